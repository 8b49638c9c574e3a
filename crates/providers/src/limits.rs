//! Size limits on what a venue — or anyone on a plain `ws://` path — can make us hold in
//! memory: one WebSocket message, one REST body, one unzipped master file. Past a limit the
//! read fails with an error naming the limit and its config key; nothing is allocated to a
//! size the other side chose.

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// A WebSocket client configuration whose messages and frames are at most `max_bytes`
/// (the library's default allows 64 MiB).
pub fn ws_config(max_bytes: usize) -> WebSocketConfig {
    WebSocketConfig::default().max_message_size(Some(max_bytes)).max_frame_size(Some(max_bytes))
}

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// The body is (or declares to be) larger than the limit.
    TooLarge {
        limit: usize,
        key: &'static str,
    },
    Transport(reqwest::Error),
}

impl BodyError {
    /// The reason in words, with the transport error described by `transport`.
    pub fn why(&self, transport: impl Fn(&reqwest::Error) -> String) -> String {
        match self {
            BodyError::TooLarge { limit, key } => format!("response body larger than {limit} bytes ({key})"),
            BodyError::Transport(e) => transport(e),
        }
    }
}

/// Reads a response body of at most `limit` bytes, chunk by chunk; `key` names the limit's
/// config key for the error.
pub async fn read_body(mut resp: reqwest::Response, limit: usize, key: &'static str) -> Result<Vec<u8>, BodyError> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge { limit, key });
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Transport)? {
        if out.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge { limit, key });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// [`read_body`] as text. Broker bodies are UTF-8 JSON; a stray invalid byte is replaced
/// rather than failing the call, and the raw archive keeps what was decoded.
pub async fn read_text(resp: reqwest::Response, limit: usize, key: &'static str) -> Result<String, BodyError> {
    let bytes = read_body(resp, limit, key).await?;
    Ok(match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-shot HTTP server on loopback answering with `body`, optionally lying about its
    /// length in the header.
    async fn serve(body: Vec<u8>, declared: Option<usize>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let head = match declared {
                Some(n) => format!("HTTP/1.1 200 OK\r\ncontent-length: {n}\r\nconnection: close\r\n\r\n"),
                None => "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_string(),
            };
            let _ = s.write_all(head.as_bytes()).await;
            if declared.is_some() {
                let _ = s.write_all(&body).await;
            } else {
                for part in body.chunks(1000) {
                    let _ = s.write_all(format!("{:x}\r\n", part.len()).as_bytes()).await;
                    let _ = s.write_all(part).await;
                    let _ = s.write_all(b"\r\n").await;
                }
                let _ = s.write_all(b"0\r\n\r\n").await;
            }
        });
        format!("http://{addr}/")
    }

    #[tokio::test]
    async fn bodies_past_the_limit_are_refused_whatever_they_declare() {
        let client = reqwest::Client::new();
        let ok = serve(vec![b'a'; 500], Some(500)).await;
        let body = read_text(client.get(ok).send().await.unwrap(), 1000, "k").await.unwrap();
        assert_eq!(body.len(), 500);
        // Declared too large: refused before reading.
        let big = serve(vec![b'a'; 10], Some(10_000_000)).await;
        let e = read_body(client.get(big).send().await.unwrap(), 1000, "providers.kis.max_body_bytes").await;
        assert!(matches!(e, Err(BodyError::TooLarge { limit: 1000, .. })));
        // Chunked with no length: refused once the chunks pass the limit.
        let chunked = serve(vec![b'a'; 5000], None).await;
        let e = read_body(client.get(chunked).send().await.unwrap(), 1000, "k").await.unwrap_err();
        assert_eq!(e.why(|_| String::new()), "response body larger than 1000 bytes (k)");
    }
}
