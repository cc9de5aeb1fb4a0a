//! Slow request bodies (security finding F1): a body that trickles in gets 408 at the
//! deadline, and one address cannot hold more connections than its cap, so the
//! server keeps answering everybody else.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::helpers::{Dirs, TestServer};

/// A connection to `port` from another loopback address than the test's own.
pub fn connect_from(source: [u8; 4], port: u16) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::from((source, 0)).into()).unwrap();
    socket
        .connect(&SocketAddr::from(([127, 0, 0, 1], port)).into())
        .unwrap();
    socket.into()
}

/// What a slow client saw: the response (empty if the server closed without one),
/// how long after its headers it began, and when the server closed the connection.
struct Outcome {
    response: String,
    after: Duration,
    closed_after: Duration,
}

/// Sends complete headers, then the body one byte every 200 ms, until the server
/// answers or closes.
fn trickle(mut stream: TcpStream, waiting: &AtomicUsize) -> Outcome {
    let started = Instant::now();
    let headers = "POST /v1/validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{";
    let _ = stream.write_all(headers.as_bytes());
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut response = Vec::new();
    let mut first_byte = None;
    let mut buf = [0u8; 4096];
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "still held after 60 s"
        );
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                first_byte.get_or_insert_with(|| started.elapsed());
                response.extend_from_slice(&buf[..n]);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if response.is_empty() {
                    let _ = stream.write_all(b" ");
                }
            }
            Err(_) => break,
        }
    }
    waiting.fetch_sub(1, Ordering::SeqCst);
    Outcome {
        response: String::from_utf8_lossy(&response).into_owned(),
        after: first_byte.unwrap_or_else(|| started.elapsed()),
        closed_after: started.elapsed(),
    }
}

#[test]
fn slow_bodies_get_408_at_the_deadline_and_one_address_cannot_starve_the_server() {
    let server = TestServer::start_with(Dirs::new(), |s| {
        s.server.max_connections_per_address = 4;
        s.server.body_timeout_seconds = 2;
    });
    let port = server.port;
    const SLOW: usize = 12;
    let waiting = Arc::new(AtomicUsize::new(SLOW));
    let clients: Vec<_> = (0..SLOW)
        .map(|_| {
            let stream = connect_from([127, 0, 0, 2], port);
            let waiting = Arc::clone(&waiting);
            std::thread::spawn(move || trickle(stream, &waiting))
        })
        .collect();
    // Meanwhile everybody else is served: /healthz from the test's own address.
    let mut probes_during_attack = 0;
    while waiting.load(Ordering::SeqCst) > 0 {
        let r = server.get("/healthz", None);
        assert_eq!(r.status, 200, "/healthz during the attack: {:?}", r.body);
        if waiting.load(Ordering::SeqCst) > 0 {
            probes_during_attack += 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(probes_during_attack > 0, "no probe ran during the attack");
    let outcomes: Vec<Outcome> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let timed_out: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.response.starts_with("HTTP/1.1 408"))
        .collect();
    let closed = outcomes.iter().filter(|o| o.response.is_empty()).count();
    assert_eq!(
        timed_out.len() + closed,
        SLOW,
        "every slow client got 408 or was closed: {:?}",
        outcomes.iter().map(|o| &o.response).collect::<Vec<_>>()
    );
    // The first four were let in and cut off at the deadline; the rest were over the
    // cap and closed at once (a few more may be let in if a place came back first).
    println!(
        "{} slow clients: {} got 408 after {:?} (closed after {:?}), {closed} closed at once; {probes_during_attack} /healthz probes answered meanwhile",
        SLOW,
        timed_out.len(),
        timed_out.iter().map(|o| o.after).collect::<Vec<_>>(),
        timed_out.iter().map(|o| o.closed_after).collect::<Vec<_>>()
    );
    assert!(timed_out.len() >= 4, "{} got 408", timed_out.len());
    assert!(closed >= 1, "the cap refused no connection");
    for o in &timed_out {
        let head = o.response.to_ascii_lowercase();
        assert!(
            head.contains("content-type: application/problem+json"),
            "{head}"
        );
        assert!(head.contains("connection: close"), "{head}");
        assert!(head.contains("\"code\":\"body_timeout\""), "{head}");
        // The deadline is what ended them, while bytes were still coming; and the
        // server closed the connection after the answer.
        assert!(o.after >= Duration::from_secs(1), "408 after {:?}", o.after);
        assert!(o.closed_after >= o.after);
    }
    // Places come back when the connections end.
    let r = server.get("/healthz", None);
    assert_eq!(r.status, 200);
}

#[test]
fn a_body_sent_in_time_is_read_whole() {
    let server = TestServer::start_with(Dirs::new(), |s| {
        s.server.body_timeout_seconds = 5;
    });
    let mut stream = connect_from([127, 0, 0, 3], server.port);
    let body = br#"{"license_key":"nope"}"#;
    write!(
        stream,
        "POST /v1/validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    // In three pieces, a little apart.
    for part in body.chunks(8) {
        stream.write_all(part).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("NOT_FOUND"), "{response}");
}
