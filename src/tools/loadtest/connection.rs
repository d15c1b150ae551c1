//! One kept-alive HTTP/1.1 connection that posts a body and reads the answer, and nothing more:
//! the loader shares the machine with zegolog and PostgreSQL, so each request costs one write of
//! a prepared buffer, a read or two into a reused buffer and a header parse (`httparse`, the
//! parser hyper uses). A general client (pooling, redirects, header maps) cost about 2.5 times
//! wrk's CPU per request. Plain `http://` only, as the benchmark and a private listener need.

use std::time::Duration;

use anyhow::bail;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where requests go: `http://host:port/path`.
#[derive(Debug, Clone)]
pub(super) struct Target {
    /// `host:port`, to connect to and to send as `Host`.
    authority: String,
    path: String,
}

impl Target {
    pub(super) fn parse(url: &str) -> anyhow::Result<Self> {
        let Some(rest) = url.strip_prefix("http://") else {
            bail!("--url `{url}`: the load test speaks plain http:// only");
        };
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            bail!("--url `{url}` has no host");
        }
        let authority = if authority
            .rsplit_once(':')
            .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
        {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Ok(Self {
            authority,
            path: path.to_owned(),
        })
    }
}

/// Why a request got no HTTP answer.
#[derive(Debug, thiserror::Error)]
pub(super) enum Failure {
    #[error("connecting to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("sending or reading: {0}")]
    Io(#[from] std::io::Error),
    #[error("the server closed the connection before answering")]
    Closed,
    #[error("an answer that is not HTTP/1.1: {0}")]
    Malformed(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// One connection to the target, opened on first use and again after a failure or a
/// `Connection: close`.
pub(super) struct Connection {
    target: Target,
    stream: Option<TcpStream>,
    request: Vec<u8>,
    answer: Vec<u8>,
}

impl Connection {
    pub(super) fn new(target: Target) -> Self {
        Self {
            target,
            stream: None,
            request: Vec::with_capacity(1024),
            answer: Vec::with_capacity(1024),
        }
    }

    /// POSTs `body` and reads the whole answer; its status.
    pub(super) async fn post(
        &mut self,
        content_type: &str,
        body: &[u8],
        timeout: Duration,
    ) -> Result<u16, Failure> {
        match tokio::time::timeout(timeout, self.exchange(content_type, body)).await {
            Ok(Ok(status)) => Ok(status),
            Ok(Err(failure)) => {
                self.stream = None;
                Err(failure)
            }
            Err(_) => {
                self.stream = None;
                Err(Failure::Timeout(timeout))
            }
        }
    }

    async fn exchange(&mut self, content_type: &str, body: &[u8]) -> Result<u16, Failure> {
        use std::io::Write;
        self.request.clear();
        write!(
            self.request,
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            self.target.path,
            self.target.authority,
            body.len()
        )?;
        self.request.extend_from_slice(body);
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None => {
                let stream = TcpStream::connect(&self.target.authority)
                    .await
                    .map_err(|e| Failure::Connect(self.target.authority.clone(), e))?;
                stream.set_nodelay(true)?;
                self.stream.insert(stream)
            }
        };
        stream.write_all(&self.request).await?;

        self.answer.clear();
        let (status, head_len, body_len, close) = loop {
            if self.answer.len() == self.answer.capacity() {
                self.answer.reserve(self.answer.len());
            }
            if stream.read_buf(&mut self.answer).await? == 0 {
                return Err(Failure::Closed);
            }
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&self.answer) {
                Ok(httparse::Status::Partial) => continue,
                Ok(httparse::Status::Complete(head_len)) => {
                    let status = response.code.unwrap_or(0);
                    let mut body_len = None;
                    let mut close = response.version == Some(0);
                    for header in response.headers.iter() {
                        if header.name.eq_ignore_ascii_case("content-length") {
                            body_len = std::str::from_utf8(header.value)
                                .ok()
                                .and_then(|v| v.trim().parse::<usize>().ok());
                        } else if header.name.eq_ignore_ascii_case("connection") {
                            close |= header.value.eq_ignore_ascii_case(b"close");
                        }
                    }
                    let Some(body_len) = body_len else {
                        return Err(Failure::Malformed(format!(
                            "status {status} without a Content-Length"
                        )));
                    };
                    break (status, head_len, body_len, close);
                }
                Err(e) => return Err(Failure::Malformed(e.to_string())),
            }
        };
        while self.answer.len() < head_len + body_len {
            self.answer.reserve(head_len + body_len - self.answer.len());
            if stream.read_buf(&mut self.answer).await? == 0 {
                return Err(Failure::Closed);
            }
        }
        if close {
            self.stream = None;
        }
        Ok(status)
    }
}

#[cfg(test)]
mod tests {
    use super::Target;

    #[test]
    fn target_takes_host_port_and_path() {
        let t = Target::parse("http://127.0.0.1:8080/zego/callback").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.path.as_str()),
            ("127.0.0.1:8080", "/zego/callback")
        );
        let t = Target::parse("http://example.com").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.path.as_str()),
            ("example.com:80", "/")
        );
        assert!(Target::parse("https://example.com/").is_err());
        assert!(Target::parse("http:///x").is_err());
    }
}
