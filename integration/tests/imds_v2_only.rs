//! IMDSv2 only (issue 12, security): an instance metadata service that refuses session
//! tokens but would answer plain GETs (IMDSv1) gets no GET from us: the read fails with a
//! typed, fatal error naming the refused token. Loopback only; no root needed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use vpc_cni_cloud::{AwsImds, CloudError, Imds};

/// Serves IMDSv1 only: token requests get 403, every GET an answer. Counts the GETs.
fn v1_only_server() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let gets = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&gets);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut length = 0usize;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                    break;
                }
                if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = std::io::Read::read_exact(&mut reader, &mut body);
            let (status, text) = if request_line.starts_with("PUT ") {
                ("403 Forbidden", "")
            } else {
                counted.fetch_add(1, Ordering::SeqCst);
                ("200 OK", "i-0123456789abcdef0")
            };
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    (url, gets)
}

#[tokio::test]
async fn an_imds_that_refuses_tokens_is_never_read_without_one() {
    let (url, gets) = v1_only_server();
    let imds = AwsImds::with_endpoint(&url).unwrap();
    let err = imds.identity().await.unwrap_err();
    assert!(
        matches!(&err, CloudError::Fatal { code, .. } if code == "TokenRefused"),
        "{err:?}"
    );
    assert_eq!(
        gets.load(Ordering::SeqCst),
        0,
        "read without a token (IMDSv1)"
    );
}
