//! Feature files: the built-in suite compiled into the binary, plus a user's own directories,
//! and the selection of scenarios by tag expression and requirement id.

use std::path::{Path, PathBuf};
use std::str::FromStr as _;

use cucumber::feature::Ext as _;
use cucumber::gherkin::{self, GherkinEnv};
use cucumber::tag::Ext as _;

/// The built-in feature files: (virtual path, text).
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "features/format.feature",
        include_str!("../features/format.feature"),
    ),
    (
        "features/identity.feature",
        include_str!("../features/identity.feature"),
    ),
    (
        "features/introspection.feature",
        include_str!("../features/introspection.feature"),
    ),
    (
        "features/tampering.feature",
        include_str!("../features/tampering.feature"),
    ),
    (
        "features/clock.feature",
        include_str!("../features/clock.feature"),
    ),
    (
        "features/idempotency.feature",
        include_str!("../features/idempotency.feature"),
    ),
    (
        "features/apikeys.feature",
        include_str!("../features/apikeys.feature"),
    ),
    (
        "features/refresh.feature",
        include_str!("../features/refresh.feature"),
    ),
    (
        "features/restart.feature",
        include_str!("../features/restart.feature"),
    ),
    (
        "features/keys.feature",
        include_str!("../features/keys.feature"),
    ),
    (
        "features/migration.feature",
        include_str!("../features/migration.feature"),
    ),
];

/// A feature-file or selection problem, reported before anything runs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FeatureError {
    /// A directory or file could not be read.
    #[error("cannot read features from {path}: {cause}")]
    Read {
        /// Path.
        path: String,
        /// Cause.
        cause: String,
    },
    /// A feature file does not parse.
    #[error(
        "{path}: {cause} (fix the Gherkin syntax; see the built-in features for the step sentences)"
    )]
    Parse {
        /// Path.
        path: String,
        /// Parser message.
        cause: String,
    },
    /// The tag expression does not parse.
    #[error(
        "--tags {expr:?} is not a tag expression: {cause} (example: --tags '@area:restart and not @level:2')"
    )]
    BadTags {
        /// The expression.
        expr: String,
        /// Why.
        cause: String,
    },
    /// A `--req` names no known requirement.
    #[error(
        "--req {0} names no requirement in keel's catalogue or in the selected feature files (see SPEC.md)"
    )]
    UnknownReq(String),
}

/// Parses one feature text.
pub fn parse(path: &str, text: &str) -> Result<gherkin::Feature, FeatureError> {
    let mut f =
        gherkin::Feature::parse(text, GherkinEnv::default()).map_err(|e| FeatureError::Parse {
            path: path.to_owned(),
            cause: e.to_string(),
        })?;
    f.path = Some(PathBuf::from(path));
    f.expand_examples().map_err(|e| FeatureError::Parse {
        path: path.to_owned(),
        cause: e.to_string(),
    })
}

/// The built-in features, parsed.
pub fn builtin() -> Result<Vec<gherkin::Feature>, FeatureError> {
    BUILTIN.iter().map(|(p, t)| parse(p, t)).collect()
}

/// Every `.feature` file under `dir` (recursively), sorted by path, parsed.
pub fn from_dir(dir: &Path) -> Result<Vec<gherkin::Feature>, FeatureError> {
    let mut files = Vec::new();
    collect(dir, &mut files)?;
    files.sort();
    if files.is_empty() {
        return Err(FeatureError::Read {
            path: dir.display().to_string(),
            cause: "no .feature files in it".into(),
        });
    }
    files
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).map_err(|e| FeatureError::Read {
                path: p.display().to_string(),
                cause: e.to_string(),
            })?;
            parse(&p.display().to_string(), &text)
        })
        .collect()
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), FeatureError> {
    let read = |e: std::io::Error| FeatureError::Read {
        path: dir.display().to_string(),
        cause: e.to_string(),
    };
    if dir.is_file() {
        out.push(dir.to_owned());
        return Ok(());
    }
    for entry in std::fs::read_dir(dir).map_err(read)? {
        let path = entry.map_err(read)?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "feature") {
            out.push(path);
        }
    }
    Ok(())
}

/// Requirement ids of a scenario (`@req:ID` on the scenario, its rule or its feature).
pub fn requirements(
    feature: &gherkin::Feature,
    rule: Option<&gherkin::Rule>,
    sc: &gherkin::Scenario,
) -> Vec<String> {
    all_tags(feature, rule, sc)
        .filter_map(|t| t.strip_prefix("req:").map(str::to_owned))
        .collect()
}

/// Every tag that applies to a scenario, feature first.
pub fn all_tags<'a>(
    feature: &'a gherkin::Feature,
    rule: Option<&'a gherkin::Rule>,
    sc: &'a gherkin::Scenario,
) -> impl Iterator<Item = &'a String> + Clone {
    feature
        .tags
        .iter()
        .chain(rule.into_iter().flat_map(|r| r.tags.iter()))
        .chain(sc.tags.iter())
}

/// Which scenarios a run selects.
pub struct Selection {
    tags: Option<gherkin::tagexpr::TagOperation>,
    reqs: Vec<String>,
}

impl Selection {
    /// Builds a selection from `--tags` and `--req`, checking both against `features`.
    pub fn new(
        tags: Option<&str>,
        reqs: &[String],
        features: &[gherkin::Feature],
    ) -> Result<Self, FeatureError> {
        let tags = match tags {
            Some(expr) => Some(gherkin::tagexpr::TagOperation::from_str(expr).map_err(|e| {
                FeatureError::BadTags {
                    expr: expr.to_owned(),
                    cause: e.to_string(),
                }
            })?),
            None => None,
        };
        let mut known: Vec<String> = crate::spec::REQUIREMENTS
            .iter()
            .map(|r| r.id.to_owned())
            .collect();
        for f in features {
            for (rule, sc) in scenarios(f) {
                known.extend(requirements(f, rule, sc));
            }
        }
        let reqs: Vec<String> = reqs.iter().map(|r| r.trim().to_uppercase()).collect();
        for r in &reqs {
            if !known.contains(r) {
                return Err(FeatureError::UnknownReq(r.clone()));
            }
        }
        Ok(Self { tags, reqs })
    }

    /// Whether a scenario is selected.
    pub fn matches(
        &self,
        feature: &gherkin::Feature,
        rule: Option<&gherkin::Rule>,
        sc: &gherkin::Scenario,
    ) -> bool {
        let by_tags = self
            .tags
            .as_ref()
            .is_none_or(|t| t.eval(all_tags(feature, rule, sc)));
        let by_req = self.reqs.is_empty()
            || requirements(feature, rule, sc)
                .iter()
                .any(|r| self.reqs.contains(r));
        by_tags && by_req
    }

    /// Number of selected scenarios in `features`.
    pub fn count(&self, features: &[gherkin::Feature]) -> usize {
        features
            .iter()
            .map(|f| scenarios(f).filter(|(r, s)| self.matches(f, *r, s)).count())
            .sum()
    }
}

/// Every scenario of a feature with its rule.
pub fn scenarios(
    f: &gherkin::Feature,
) -> impl Iterator<Item = (Option<&gherkin::Rule>, &gherkin::Scenario)> {
    f.scenarios.iter().map(|s| (None, s)).chain(
        f.rules
            .iter()
            .flat_map(|r| r.scenarios.iter().map(move |s| (Some(r), s))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_features_parse_and_every_scenario_names_a_known_requirement() {
        let features = builtin().unwrap();
        let mut covered = std::collections::BTreeSet::new();
        for f in &features {
            for (r, s) in scenarios(f) {
                let reqs = requirements(f, r, s);
                assert!(
                    !reqs.is_empty(),
                    "{}: scenario {:?} has no @req tag",
                    f.name,
                    s.name
                );
                for id in reqs {
                    assert!(
                        crate::spec::find(&id).is_some(),
                        "unknown requirement {id} in {:?}",
                        s.name
                    );
                    covered.insert(id);
                }
            }
        }
        for r in crate::spec::REQUIREMENTS {
            assert!(
                covered.contains(r.id),
                "requirement {} has no scenario",
                r.id
            );
        }
    }

    #[test]
    fn selections_filter_and_count() {
        let features = builtin().unwrap();
        let all = Selection::new(None, &[], &features)
            .unwrap()
            .count(&features);
        assert!(all >= 20, "{all}");
        let rst = Selection::new(Some("@area:restart"), &[], &features)
            .unwrap()
            .count(&features);
        assert_eq!(rst, 10);
        let keys = Selection::new(Some("@area:keys"), &[], &features)
            .unwrap()
            .count(&features);
        assert_eq!(keys, 4);
        let one = Selection::new(None, &["rst-1".into()], &features)
            .unwrap()
            .count(&features);
        assert_eq!(one, 2);
        assert_eq!(
            Selection::new(Some("@nope"), &[], &features)
                .unwrap()
                .count(&features),
            0
        );
        assert!(Selection::new(None, &["XYZ-9".into()], &features).is_err());
        assert!(Selection::new(Some("@a and and"), &[], &features).is_err());
    }
}
