//! The one place that speaks HTTP to an issuer.
//!
//! Every request has a deadline covering connect, headers and body; every body is read as a
//! stream under a size cap; redirects are never followed (a token or introspection request
//! must not be re-sent elsewhere); error messages name the method, the URL and the cause, and
//! never carry a token.

use std::time::Duration;

use futures::StreamExt as _;
use serde_json::Value;

/// Default per-request deadline.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default cap on a response body.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;

/// What went wrong talking to the issuer. Each variant names the request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// No complete answer within the deadline.
    #[error("{method} {url}: no complete answer within {timeout:?}")]
    Timeout {
        /// Request method.
        method: &'static str,
        /// Request URL.
        url: String,
        /// The deadline.
        timeout: Duration,
    },
    /// The connection could not be made or broke.
    #[error("{method} {url}: {cause}")]
    Transport {
        /// Request method.
        method: &'static str,
        /// Request URL.
        url: String,
        /// The transport error, flattened with its sources.
        cause: String,
    },
    /// The body exceeded the cap.
    #[error("{method} {url}: response body exceeds the {limit}-byte limit")]
    TooLarge {
        /// Request method.
        method: &'static str,
        /// Request URL.
        url: String,
        /// The cap.
        limit: usize,
    },
    /// The body is not the JSON that was expected.
    #[error(
        "{method} {url}: expected a JSON object, got HTTP {status} {content_type} ({len} bytes): {cause}"
    )]
    NotJson {
        /// Request method.
        method: &'static str,
        /// Request URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// Content-Type header, or `(no content type)`.
        content_type: String,
        /// Body length.
        len: usize,
        /// Parser message.
        cause: String,
    },
}

/// A complete, size-capped response.
#[derive(Clone, Debug)]
pub struct Reply {
    /// Request method.
    pub method: &'static str,
    /// Request URL.
    pub url: String,
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as a JSON object, or an error naming the request and what came back.
    pub fn json_object(&self) -> Result<serde_json::Map<String, Value>, HttpError> {
        let fail = |cause: String| HttpError::NotJson {
            method: self.method,
            url: self.url.clone(),
            status: self.status,
            content_type: self
                .content_type()
                .unwrap_or("(no content type)")
                .to_owned(),
            len: self.body.len(),
            cause,
        };
        match serde_json::from_slice::<Value>(&self.body) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(other) => Err(fail(format!("a JSON {}", kind(&other)))),
            Err(e) => Err(fail(e.to_string())),
        }
    }

    /// The Content-Type header, if it is readable.
    pub fn content_type(&self) -> Option<&str> {
        self.header("content-type")
    }

    /// A header value, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `METHOD URL -> STATUS`, for messages.
    pub fn describe(&self) -> String {
        format!("{} {} -> HTTP {}", self.method, self.url, self.status)
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Client authentication for a request.
#[derive(Clone, Copy, Debug)]
pub enum Auth<'a> {
    /// None.
    None,
    /// HTTP Basic with the RFC 6749 §2.3.1 form-encoding of id and secret.
    Basic(&'a str, &'a str),
}

/// The HTTP client keel uses for every issuer request.
#[derive(Clone, Debug)]
pub struct IssuerClient {
    http: reqwest::Client,
    timeout: Duration,
    max_body: usize,
}

impl IssuerClient {
    /// A client with the given per-request deadline and body cap.
    pub fn new(timeout: Duration, max_body: usize) -> Result<Self, HttpError> {
        Self::with_ca(timeout, max_body, None)
    }

    /// A client that also trusts the certificates of a PEM bundle (an issuer behind a
    /// private CA).
    pub fn with_ca(
        timeout: Duration,
        max_body: usize,
        ca_pem: Option<&[u8]>,
    ) -> Result<Self, HttpError> {
        let mut builder = reqwest::Client::builder();
        if let Some(pem) = ca_pem {
            let certs =
                reqwest::Certificate::from_pem_bundle(pem).map_err(|e| HttpError::Transport {
                    method: "-",
                    url: "-".into(),
                    cause: format!("the CA bundle is not PEM certificates: {}", flatten(&e)),
                })?;
            if certs.is_empty() {
                return Err(HttpError::Transport {
                    method: "-",
                    url: "-".into(),
                    cause: "the CA bundle holds no PEM certificate".into(),
                });
            }
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let http = builder
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .timeout(timeout)
            .user_agent(concat!("keel/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| HttpError::Transport {
                method: "-",
                url: "-".into(),
                cause: flatten(&e),
            })?;
        Ok(Self {
            http,
            timeout,
            max_body,
        })
    }

    /// The per-request deadline.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// GET `url`.
    pub async fn get(&self, url: &str) -> Result<Reply, HttpError> {
        self.send("GET", url, self.http.get(url)).await
    }

    /// A bodyless call (`POST`, `GET`, ...) with an optional bearer token, for hooks.
    pub async fn call(
        &self,
        method: &str,
        url: &str,
        bearer: Option<&str>,
    ) -> Result<Reply, HttpError> {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::POST);
        let mut req = self.http.request(m, url);
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        self.send("CALL", url, req).await
    }

    /// POST a form to `url`, with client authentication and extra headers.
    pub async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
        auth: Auth<'_>,
        headers: &[(&str, &str)],
    ) -> Result<Reply, HttpError> {
        let mut req = self
            .http
            .post(url)
            .form(form)
            .header("accept", "application/json");
        if let Auth::Basic(id, secret) = auth {
            req = req.basic_auth(form_encode(id), Some(form_encode(secret)));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send("POST", url, req).await
    }

    async fn send(
        &self,
        method: &'static str,
        url: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<Reply, HttpError> {
        let timeout = self.timeout;
        let work = async {
            let resp = req
                .send()
                .await
                .map_err(|e| self.transport(method, url, &e))?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            if let Some(len) = resp.content_length()
                && len > self.max_body as u64
            {
                return Err(HttpError::TooLarge {
                    method,
                    url: url.to_owned(),
                    limit: self.max_body,
                });
            }
            let mut body = Vec::new();
            let mut stream = resp.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| self.transport(method, url, &e))?;
                if body.len() + chunk.len() > self.max_body {
                    return Err(HttpError::TooLarge {
                        method,
                        url: url.to_owned(),
                        limit: self.max_body,
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Reply {
                method,
                url: url.to_owned(),
                status,
                headers,
                body,
            })
        };
        // reqwest's own timeout covers the body too, but a hard outer deadline makes the bound
        // independent of how the body stream is polled.
        match tokio::time::timeout(timeout + Duration::from_millis(500), work).await {
            Ok(r) => r,
            Err(_) => Err(HttpError::Timeout {
                method,
                url: url.to_owned(),
                timeout,
            }),
        }
    }

    fn transport(&self, method: &'static str, url: &str, e: &reqwest::Error) -> HttpError {
        if e.is_timeout() {
            HttpError::Timeout {
                method,
                url: url.to_owned(),
                timeout: self.timeout,
            }
        } else {
            HttpError::Transport {
                method,
                url: url.to_owned(),
                cause: flatten(e),
            }
        }
    }
}

/// An error and its sources on one line, without the URL (which reqwest repeats).
fn flatten(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let s = err.to_string();
        let s = match s.find(" for url (") {
            Some(i) => s[..i].to_owned(),
            None => s,
        };
        if parts.last() != Some(&s) {
            parts.push(s);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// RFC 6749 §2.3.1: client id and secret are form-urlencoded before Basic encoding.
fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_encoded() {
        assert_eq!(form_encode("a b:c"), "a+b%3Ac");
    }
}
