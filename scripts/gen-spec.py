#!/usr/bin/env python3
"""Regenerates SPEC.md from src/spec.rs (ids, strengths, titles, sources), the rationales below,
and the @req tags of features/*.feature. `cargo test` checks that SPEC.md and src/spec.rs agree."""
import glob, re, pathlib
root = pathlib.Path(__file__).resolve().parent.parent
src = (root / "src/spec.rs").read_text()
reqs = re.findall(r'req\(\s*"([A-Z]+-\d+)",\s*(Must|Should),\s*"((?:[^"\\]|\\.)*)",\s*"((?:[^"\\]|\\.)*)",?\s*\)', src)
rationale = {
'FMT-1': "A fixed prefix lets secret scanners, log filters and support staff recognise a token's kind at a glance and lets an issuer reject a token of the wrong kind before any lookup; a fixed public-id segment lets logs and audits name the token without its secret. If the shape drifts, every tool keyed on it silently stops matching.",
'FMT-2': "An embedded checksum lets anyone validate a token offline (a scanner, a client library, a cache) and tells typos from forgeries without a database round trip. keel checks the checksum of every token it is handed, and that its own validator (independent of the issuer, with vectors from Python's zlib) rejects every single-character substitution, so the scheme really detects what it claims.",
'IDN-1': "Resource servers, caches and audit logs key on these references; a token without them cannot be attributed, expired or traced.",
'IDN-2': "A verifier finds the key by kid; a kid that names no published key makes every offline verification fail or fall back to unsafe guesses.",
'IDN-3': "A thumbprint kid is derived from the key material itself, so it can never name two different keys and never changes on a restart or a re-import. A SHOULD: other stable kid schemes are legitimate, but keel warns on them.",
'IDN-4': "The token and the issuer must tell the same story: a resource server that reads the JWT and one that introspects must agree on whose token it is; the public id of an opaque token must be the id the issuer reports, or logs and revocation lists refer to different things.",
'INT-1': "Resource servers parse introspection responses with typed models; a string where RFC 7662 says boolean or NumericDate breaks them or, worse, is coerced.",
'INT-2': "An inactive response must reveal nothing about why (RFC 7662 §4: no information leakage) and must be machine-unambiguous.",
'INT-3': "Revocation is a security control: it must take effect at once, and must not become an oracle that tells attackers which tokens exist.",
'INT-4': "A refresh token stands for the grant; revoking it while its access tokens live on leaves the grant half-revoked. keel is stricter than RFC 7009's SHOULD here because a revocation that leaves usable access tokens behind did not happen.",
'NEG-1': "The checksum is only worth something if the issuer enforces it; accepting a token with a wrong checksum means the issuer validates less than offline tools do.",
'NEG-2': "The prefix names the token type; an issuer that ignores it can be handed one kind of token in place of another.",
'NEG-3': "A signature that is not checked is decoration.",
'NEG-4': "The classic JWT downgrade: an issuer that honours alg none accepts tokens anyone can mint.",
'NEG-5': "A token signed by a key the issuer never published must not verify, whatever its claims say.",
'RFR-1': "A refresh continues a grant; if the family id, subject or client drift along a chain, sessions split, audit trails break and reuse detection loses track of the family. Under rotation a refresh token that comes back twice defeats the point of rotating.",
'RFR-2': "A rotated-out refresh token presented again means one of two parties holds a stolen copy; RFC 9700 §4.14.2 asks the server to refuse it and revoke the family so that the thief's tokens die too.",
'RFR-3': "Revoking more than the compromised family logs every other session of the user or client out: a denial of service that makes operators switch reuse detection off.",
'RFR-4': "Clients retry and race (several tabs, a retry after a timeout); a rotation that is not atomic mints two live successors of one token (two families from one grant), and a 5xx under contention is an outage.",
'CLK-1': "Verifiers judge expiry with their own clocks; an iat that disagrees with the issuer's own Date, an nbf after iat, or a lifetime other than the one declared makes tokens expire early or live too long.",
'IDM-1': "Clients retry on timeouts; without idempotent issuance every retry mints a second identity that logs, quotas and audits count as another principal or session.",
'IDM-2': "Reusing a key for a different request is a client bug that must be surfaced, not silently answered with a token for the first request.",
'IDM-3': "A retry often follows a failover or restart; an idempotency record kept only in memory fails exactly when it is needed.",
'IDM-4': "Token ids key revocation lists and audit trails; subjects key authorization. A collision merges two tokens or two principals.",
'KEY-1': "Verifiers cache the JWKS; a token signed with a key they have not fetched yet fails until their cache expires. Publishing first, signing later avoids that outage.",
'KEY-2': "Tokens in flight were signed by the previous key; dropping it at activation invalidates them all. The previous key must stay published for at least the longest token lifetime.",
'KEY-3': "Caches map kid to key; a kid that changes or is reused for other material makes verifiers use the wrong key, which fails at best and accepts forgeries at worst.",
'KEY-4': "Key state (staged, active, retired) is state like any other: a restart that loses it un-rotates the issuer.",
'MIG-1': "Deploys migrate schemas while tokens are in flight; a migration that re-derives ids or drops rows silently invalidates or re-attributes them.",
'MIG-2': "Rollbacks happen under pressure, after a bad deploy; a rollback that loses what was issued since makes a bad deploy worse.",
'MIG-3': "A migration that changes how subjects are derived splits every principal into before and after.",
'RFR-5': "A restart must not cut a refresh chain or start a new family: reuse detection depends on the family surviving.",
'ROL-1': "The public id is how operators, dashboards and audit logs refer to a key; a roll that changes it breaks every reference.",
'ROL-2': "A roll needs overlap so that deployments can switch to the new secret, and it must end, or the old secret was never retired.",
'RST-1': "A restart (deploy, crash, autoscaling) is routine; every token issued before it must keep working until it expires or is revoked.",
'RST-2': "Caches, audit trails and downstream authorization key on identity references; a restart that re-derives a sub or a jti silently splits one principal into two.",
'RST-3': "Verifiers cache the JWKS (Cache-Control max-age); a restart that changes it invalidates every token in flight and every cached key.",
'RST-4': "A revocation that a restart forgets resurrects stolen tokens.",
'RST-5': "Sessions outlive processes: a refresh token must keep working across a restart and must keep naming the same principal and grant.",
'RST-6': "An issuer that answers before it has durably recorded a token loses it on a crash; the client holds a token the issuer no longer knows. keel kills the process (SIGKILL for the reference issuer; the target's kill hook otherwise) immediately after issuance.",
}
fam = {'CLK': 'Clock', 'IDM': 'Deterministic issuance', 'KEY': 'Signing-key rotation', 'MIG': 'Migrations and rollback', 'ROL': 'Secret roll of API keys', 'FMT': 'Token format and checksum', 'IDN': 'Identity present and readable', 'INT': 'Introspection and revocation',
       'NEG': 'Tampered tokens rejected', 'RFR': 'Refresh-token rotation', 'RST': 'Restart'}
scen = {}
for f in sorted(glob.glob(str(root / 'features/*.feature'))):
    rel = 'features/' + pathlib.Path(f).name
    tags = []
    for line in open(f).read().splitlines():
        s = line.strip()
        if s.startswith('@'):
            tags += s.split()
        elif s.startswith('Scenario'):
            name = s.split(':', 1)[1].strip()
            for t in tags:
                if t.startswith('@req:'):
                    scen.setdefault(t[5:], []).append(f"`{rel}`: {name}")
            tags = []
        elif s.startswith('Feature'):
            tags = []
out = ["# keel's requirement catalogue", "",
       "Each requirement has a stable id that is never reused for another rule, a strength (RFC 2119:",
       "a broken MUST is a **fail**, a broken SHOULD a **warn**), a rationale, the specification it builds",
       "on, and the scenarios that check it (tagged `@req:ID`). A requirement whose capability the target",
       "does not declare is **not applicable**, reported with the reason. The table in `src/spec.rs` is",
       "the machine-readable copy; a test checks that the two agree, and another that every requirement",
       "has a scenario. This file is regenerated by `scripts/gen-spec.py`.", ""]
cur = None
for (i, st, title, source) in reqs:
    f = i.split('-')[0]
    if f != cur:
        out += [f"## {f}: {fam[f]}", ""]
        cur = f
    title = title.replace('\\"', '"')
    out += [f"### {i} ({st.upper()})", "", f"{title}.", "", f"- Rationale: {rationale[i]}", f"- Builds on: {source}.", "- Scenarios:"]
    out += [f"  - {s}" for s in scen.get(i, [])]
    out.append("")
(root / 'SPEC.md').write_text("\n".join(out))
print(f"SPEC.md: {len(reqs)} requirements")
