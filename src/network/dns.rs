//! A small built-in DNS server for user-defined networks, in the manner of Docker's embedded DNS
//! and podman's aardvark-dns.
//!
//! [`serve`] answers UDP queries on one socket (typically the network's gateway address, port
//! 53, inside the network namespace), forwarding what it cannot answer through an [`Upstream`]:
//!
//! - an `A` query for a name in the records file is answered with all of that name's addresses,
//!   rotated by one position on each answer (round robin), with a TTL of [`TTL`] = 0 seconds so
//!   that clients and caching stub resolvers ask again every time and see the rotation and any
//!   change of address at once (the server is local, so asking again costs nothing);
//! - a `PTR` query for `D.C.B.A.in-addr.arpa` where A.B.C.D is in the records file is answered
//!   with the first name the file gives that address (a container's name comes first);
//! - any other query type (`AAAA`, `MX`, `TXT`, ...) for a known name gets `NOERROR` with no
//!   answers, so that clients fall back to the `A` records instead of treating the name as
//!   missing;
//! - a query for any other name (or of a class other than `IN`) is forwarded unchanged, apart from
//!   a fresh random message id, to the upstream resolvers in order; the first reply that arrives
//!   within [`UPSTREAM_TIMEOUT`] of asking that resolver is relayed byte for byte with the client's
//!   id put back. When no resolver answers, the client gets `SERVFAIL`. At most 64 queries per
//!   server wait for upstream at once; past that, clients get `SERVFAIL` at once;
//! - a query with another opcode gets `NOTIMP`, one without exactly one question `FORMERR`;
//! - anything that is not a DNS query (undecodable bytes, responses) is dropped without a reply.
//!
//! Only UDP is served. A local answer that would not fit the client's UDP payload size (512 bytes,
//! or the EDNS size it advertised, at most 1232) carries as many addresses as fit, without the
//! truncation bit (there is no TCP to retry over). Forwarded replies are relayed as they are.
//!
//! # Records file
//!
//! Plain UTF-8 text, one record per line:
//!
//! ```text
//! # comment lines and blank lines are ignored; so is anything after a '#'
//! web        10.88.0.2
//! web        10.88.0.3        # a second line for a name adds a second address
//! db.mynet.  10.88.0.4
//! ```
//!
//! Each line is `NAME ADDRESS`, separated by spaces or tabs. `NAME` is a DNS name written in
//! ASCII (labels of letters, digits, `-` and `_`, joined by dots), compared case-insensitively,
//! with or without a trailing dot. `ADDRESS` is an IPv4 address in dotted form. The order of the
//! lines gives the order of a name's addresses in the first answer; a repeated `NAME ADDRESS`
//! pair counts once. Lines that do not have this form are skipped.
//!
//! [`serve`] reads the file again whenever its modification time, size or inode changes, checked
//! on every query. Write it atomically (write a temporary file in the same directory, then rename
//! it over the old one) so that a query never sees half a file. A missing file means no records:
//! every query is forwarded.
//!
//! # Upstream
//!
//! The network namespace the servers run in usually cannot reach the host's resolvers, so all
//! forwarding goes through one UDP socket that was created, and bound (to `0.0.0.0:0`, say), in
//! the host's network namespace before the process moved: a socket keeps the namespace it was
//! made in. [`Upstream::new`] takes that socket and the resolvers' addresses; any number of
//! [`serve`] loops, one per network and each on a thread of its own, share the one [`Upstream`].
//!
//! ```no_run
//! # use std::net::UdpSocket;
//! # use std::path::Path;
//! # use burrow::network::dns::{Upstream, serve};
//! # fn main() -> std::io::Result<()> {
//! # let resolvers = vec!["192.0.2.53:53".parse().unwrap()];
//! // In the host's network namespace:
//! let outside = UdpSocket::bind("0.0.0.0:0")?;
//! // ... after moving into the networks' namespace:
//! let upstream = Upstream::new(outside, resolvers)?;
//! for (address, records) in [("10.88.0.1:53", "/run/a.hosts"), ("10.89.0.1:53", "/run/b.hosts")] {
//!     let socket = UdpSocket::bind(address)?;
//!     let upstream = upstream.clone();
//!     std::thread::spawn(move || serve(socket, Path::new(records), upstream));
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Each forwarded query goes out under a fresh random message id that no other query waiting on
//! the socket holds. One receiver thread reads every reply from the socket and hands it to the
//! query waiting under its id, provided it comes from the resolver that query was sent to and is
//! a DNS response; anything else is dropped. Because every query leaves from the same port, only
//! the 16-bit id (and the resolver's address) stands between a forged reply and a client.
//!
//! ICMP errors are not reported on an unconnected socket, so a resolver that refuses (nothing
//! listening) costs the full [`UPSTREAM_TIMEOUT`] like a silent one; a resolver the socket
//! cannot send to at all (an IPv6 resolver from an IPv4 socket) is skipped at once.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::unix::fs::MetadataExt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use hickory_proto::op::{Edns, Message, MessageType, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

/// TTL, in seconds, of the `A` records served from the records file.
///
/// Zero: nothing may cache them, so round robin and address changes take effect on the next
/// lookup. Docker uses 600 and aardvark-dns 60; both then depend on clients not caching.
pub const TTL: u32 = 0;

/// How long to wait for one upstream resolver before asking the next one.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// The most forwarded queries of one [`serve`] loop waiting for upstream at once; past that,
/// clients get `SERVFAIL`.
const MAX_IN_FLIGHT: usize = 64;

/// How often the receiver thread of an [`Upstream`] looks up from the socket to see whether the
/// [`Upstream`] is gone; the socket is closed within this long after the last reference drops.
const RECEIVER_POLL: Duration = Duration::from_secs(1);

/// How long the receiver thread pauses after an unexpected error from the socket, so that a
/// persistent one does not make it spin.
const RECEIVER_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// How many random message ids a forwarded query tries before giving up on finding a free one.
/// With at most a few hundred queries in flight out of 65 536 ids, the first try nearly always
/// succeeds.
const ID_ATTEMPTS: usize = 64;

/// The UDP payload size every DNS client accepts (RFC 1035).
const MIN_UDP_PAYLOAD: u16 = 512;

/// The EDNS payload size this server advertises (the DNS flag day 2020 value).
const EDNS_PAYLOAD: u16 = 1232;

/// Size of the receive buffers: the largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;

/// The A records of one network: names and their IPv4 addresses, with round robin.
#[derive(Debug, Default)]
pub struct Records {
    /// Normalised name (see [`normalise`]) → its addresses.
    names: HashMap<String, Entry>,
    /// Address → the first name given for it in the file (the answer to a `PTR` query).
    reverse: HashMap<Ipv4Addr, String>,
}

/// The addresses of one name and how often they have been handed out.
#[derive(Debug, Default)]
struct Entry {
    /// In the order of the records file, without repeats.
    addresses: Vec<Ipv4Addr>,
    /// Counts lookups; the answer is rotated left by this modulo the number of addresses.
    turn: AtomicUsize,
}

impl Records {
    /// Parses a records file (see the module documentation); lines that do not parse are skipped.
    pub fn parse(text: &str) -> Self {
        let mut names: HashMap<String, Entry> = HashMap::new();
        let mut reverse = HashMap::new();
        for (name, address) in text.lines().filter_map(parse_line) {
            reverse.entry(address).or_insert_with(|| name.clone());
            let entry = names.entry(name).or_default();
            if !entry.addresses.contains(&address) {
                entry.addresses.push(address);
            }
        }
        Self { names, reverse }
    }

    /// The name of `address` (the first the records file gives it), if it has one.
    pub fn name_of(&self, address: Ipv4Addr) -> Option<&str> {
        self.reverse.get(&address).map(String::as_str)
    }

    /// Returns the addresses of `name` (any case, with or without a trailing dot), or none when
    /// the name is unknown. Each call for the same name starts the list one address further on.
    pub fn lookup(&self, name: &str) -> Vec<Ipv4Addr> {
        self.names
            .get(&normalise(name))
            .map(Entry::next_order)
            .unwrap_or_default()
    }

    /// Whether `name`, already normalised, has any address. Does not advance the round robin.
    fn contains(&self, normalised: &str) -> bool {
        self.names.contains_key(normalised)
    }
}

impl Entry {
    /// The addresses, rotated by the number of earlier lookups.
    fn next_order(&self) -> Vec<Ipv4Addr> {
        let mut addresses = self.addresses.clone();
        if !addresses.is_empty() {
            let turn = self.turn.fetch_add(1, Ordering::Relaxed);
            addresses.rotate_left(turn % self.addresses.len());
        }
        addresses
    }
}

/// Parses one line of a records file into a normalised name and an address.
fn parse_line(line: &str) -> Option<(String, Ipv4Addr)> {
    let line = line.split('#').next().unwrap_or_default();
    let mut fields = line.split_whitespace();
    let (name, address) = (fields.next()?, fields.next()?);
    if fields.next().is_some() || !is_valid_name(name) {
        return None;
    }
    Some((normalise(name), address.parse().ok()?))
}

/// Whether `name` is a dotted ASCII DNS name of letters, digits, `-` and `_` (trailing dot
/// allowed), with labels of 1 to 63 characters and 253 characters in all.
fn is_valid_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The form in which names are compared: ASCII lower case, without a trailing dot.
fn normalise(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// The normalised form of a name from the wire, or `None` when a label holds a byte that no
/// records-file name can contain (such a name is never known).
fn normalise_wire(name: &Name) -> Option<String> {
    let mut labels = Vec::new();
    for label in name.iter() {
        let label = std::str::from_utf8(label).ok()?;
        if label.contains(|c: char| !c.is_ascii_graphic() || c == '.') {
            return None;
        }
        labels.push(label.to_ascii_lowercase());
    }
    Some(labels.join("."))
}

/// The records file and what was last read from it.
struct RecordsFile {
    /// Where the records are.
    path: PathBuf,
    /// Modification time, size and inode of the file when it was read; `None` when it was missing.
    stamp: Option<(SystemTime, u64, u64)>,
    /// The records read last.
    records: Records,
}

impl RecordsFile {
    /// Starts with no records; the first [`RecordsFile::refresh`] reads the file.
    fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            stamp: None,
            records: Records::default(),
        }
    }

    /// Reads the file again when `meta` differs from what it was at the last read; a failed read
    /// keeps the records read before (and is tried again on the next query).
    fn reload_if_changed(&mut self, meta: &std::fs::Metadata) {
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let stamp = Some((modified, meta.len(), meta.ino()));
        if stamp == self.stamp {
            return;
        }
        if let Ok(text) = std::fs::read_to_string(&self.path) {
            self.records = Records::parse(&text);
            self.stamp = stamp;
        }
    }

    /// Reads the file again if it changed since the last read. A missing file means no records;
    /// any other error keeps the records read before.
    fn refresh(&mut self) -> &Records {
        match self.path.metadata() {
            Ok(meta) => self.reload_if_changed(&meta),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.records = Records::default();
                self.stamp = None;
            }
            Err(_) => {}
        }
        &self.records
    }
}

/// What to do with one received datagram.
#[derive(Debug, PartialEq)]
enum Action {
    /// Send these bytes back to the client.
    Reply(Vec<u8>),
    /// Forward the datagram, unchanged but for its id, to the upstream resolvers.
    Forward,
    /// Drop the datagram.
    Ignore,
}

/// Serves DNS over UDP on `socket` until receiving fails for good, answering from the records
/// file at `records` (re-read when it changes) and forwarding other names through `upstream`,
/// which any number of `serve` loops may share.
///
/// Blocks the calling thread; forwarded queries are waited for on threads of their own, so a slow
/// upstream does not hold up local answers. Returns only on an error from the socket other than
/// the transient ones (interrupted, timed out, ICMP errors reported on a later receive).
pub fn serve(socket: UdpSocket, records: &Path, upstream: Arc<Upstream>) -> io::Result<()> {
    let socket = Arc::new(socket);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut file = RecordsFile::new(records);
    let mut buffer = vec![0; MAX_DATAGRAM];
    loop {
        let (len, client) = match socket.recv_from(&mut buffer) {
            Ok(received) => received,
            Err(e) if is_transient(&e) => continue,
            Err(e) => return Err(e),
        };
        let packet = &buffer[..len];
        match decide(packet, file.refresh()) {
            Action::Reply(reply) => send(&socket, &reply, client),
            Action::Forward => {
                spawn_forward(&socket, packet.to_vec(), client, &upstream, &in_flight);
            }
            Action::Ignore => {}
        }
    }
}

/// Whether a receive error leaves the socket usable.
fn is_transient(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
    )
}

/// Sends one reply; UDP is best effort, so a failure is dropped like a lost datagram.
fn send(socket: &UdpSocket, reply: &[u8], client: SocketAddr) {
    let _ = socket.send_to(reply, client);
}

/// Decides how to handle `packet`, answering from `records` where it can. Never panics: should
/// the message decoder panic on some input, the packet is ignored.
fn decide(packet: &[u8], records: &Records) -> Action {
    panic::catch_unwind(AssertUnwindSafe(|| decide_inner(packet, records)))
        .unwrap_or(Action::Ignore)
}

/// [`decide`] without the guard against panics.
fn decide_inner(packet: &[u8], records: &Records) -> Action {
    let Ok(request) = Message::from_vec(packet) else {
        return Action::Ignore;
    };
    if request.metadata.message_type != MessageType::Query {
        return Action::Ignore;
    }
    if request.metadata.op_code != OpCode::Query {
        return error_reply(&request, ResponseCode::NotImp);
    }
    let [query] = request.queries.as_slice() else {
        return error_reply(&request, ResponseCode::FormErr);
    };
    if query.query_type() == RecordType::PTR && query.query_class() == DNSClass::IN {
        let name = reverse_address(query.name()).and_then(|ip| records.name_of(ip));
        if let Some(name) = name.and_then(|n| Name::from_ascii(format!("{n}.")).ok()) {
            let mut response = response_to(&request);
            response.metadata.authoritative = true;
            response.add_query(query.clone());
            response.add_answer(Record::from_rdata(
                query.name().clone(),
                TTL,
                RData::PTR(PTR(name)),
            ));
            return encode(response, payload_limit(&request));
        }
    }
    let known = normalise_wire(query.name()).filter(|name| records.contains(name));
    match known {
        Some(name) if query.query_class() == DNSClass::IN => {
            let addresses = match query.query_type() {
                RecordType::A => records.lookup(&name),
                _ => Vec::new(),
            };
            encode(answer(&request, query, &addresses), payload_limit(&request))
        }
        _ => Action::Forward,
    }
}

/// The address a reverse name stands for: `4.3.2.1.in-addr.arpa` → 1.2.3.4.
fn reverse_address(name: &Name) -> Option<Ipv4Addr> {
    let name = normalise_wire(name)?;
    let octets = name.strip_suffix(".in-addr.arpa")?;
    let parts: Vec<u8> = octets
        .split('.')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let [d, c, b, a] = parts[..] else {
        return None;
    };
    Some(Ipv4Addr::new(a, b, c, d))
}

/// A response header for `request`: same id, opcode, RD and CD bits.
fn response_to(request: &Message) -> Message {
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata = Metadata::response_from_request(&request.metadata);
    response.metadata.recursion_available = true;
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        response.set_edns(edns);
    }
    response
}

/// An error response carrying the request's questions.
fn error_reply(request: &Message, code: ResponseCode) -> Action {
    let mut response = response_to(request);
    response.metadata.response_code = code;
    response.add_queries(request.queries.iter().cloned());
    encode(response, payload_limit(request))
}

/// An authoritative answer to `query` with one `A` record per address.
fn answer(request: &Message, query: &Query, addresses: &[Ipv4Addr]) -> Message {
    let mut response = response_to(request);
    response.metadata.authoritative = true;
    response.add_query(query.clone());
    response.add_answers(
        addresses
            .iter()
            .map(|ip| Record::from_rdata(query.name().clone(), TTL, RData::A(A(*ip)))),
    );
    response
}

/// The largest reply the client of `request` accepts over UDP.
fn payload_limit(request: &Message) -> usize {
    let advertised = request.edns.as_ref().map_or(0, Edns::max_payload);
    usize::from(advertised.clamp(MIN_UDP_PAYLOAD, EDNS_PAYLOAD))
}

/// Encodes `response`, dropping answers from the end until it fits in `limit` bytes.
fn encode(mut response: Message, limit: usize) -> Action {
    loop {
        match response.to_vec() {
            Ok(bytes) if bytes.len() <= limit || response.answers.is_empty() => {
                return Action::Reply(bytes);
            }
            Ok(_) => {
                response.answers.pop();
            }
            Err(_) => return Action::Ignore,
        }
    }
}

/// Forwards `query` from `client` on a thread of its own and relays the answer, or `SERVFAIL`.
/// When too many forwards are waiting already, or no thread can be started, answers `SERVFAIL`
/// at once.
fn spawn_forward(
    socket: &Arc<UdpSocket>,
    query: Vec<u8>,
    client: SocketAddr,
    upstream: &Arc<Upstream>,
    in_flight: &Arc<AtomicUsize>,
) {
    if in_flight.fetch_add(1, Ordering::AcqRel) >= MAX_IN_FLIGHT {
        in_flight.fetch_sub(1, Ordering::AcqRel);
        send_servfail(socket, &query, client);
        return;
    }
    let (thread_socket, thread_upstream, thread_in_flight) = (
        Arc::clone(socket),
        Arc::clone(upstream),
        Arc::clone(in_flight),
    );
    let thread_query = query.clone();
    let spawned = thread::Builder::new()
        .name("dns-forward".into())
        .spawn(move || {
            match thread_upstream.ask(&thread_query) {
                Some(reply) => send(&thread_socket, &reply, client),
                None => send_servfail(&thread_socket, &thread_query, client),
            }
            thread_in_flight.fetch_sub(1, Ordering::AcqRel);
        });
    if spawned.is_err() {
        in_flight.fetch_sub(1, Ordering::AcqRel);
        send_servfail(socket, &query, client);
    }
}

/// Answers `query` with `SERVFAIL`.
fn send_servfail(socket: &UdpSocket, query: &[u8], client: SocketAddr) {
    let Ok(request) = Message::from_vec(query) else {
        return;
    };
    if let Action::Reply(reply) = error_reply(&request, ResponseCode::ServFail) {
        send(socket, &reply, client);
    }
}

/// The upstream resolvers and the one socket, shared by every [`serve`] loop, through which they
/// are asked (see the module documentation).
///
/// Owns a receiver thread that reads the replies from the socket and hands each to the query
/// waiting for it. The thread, and with it the socket, ends within a second of the last
/// `Arc<Upstream>` being dropped.
#[derive(Debug)]
pub struct Upstream {
    /// Where the queries leave from and the replies arrive; usually made in another network
    /// namespace.
    socket: UdpSocket,
    /// The resolvers, asked in this order.
    servers: Vec<SocketAddr>,
    /// The queries waiting for a reply, by the message id they were sent under.
    waiting: Mutex<HashMap<u16, Waiter>>,
}

/// A forwarded query waiting for its reply.
#[derive(Debug)]
struct Waiter {
    /// The resolver it was sent to, in canonical form; replies from elsewhere are dropped.
    server: SocketAddr,
    /// Where the reply goes; room for one, so that a repeated reply is dropped.
    reply: SyncSender<Vec<u8>>,
}

impl Upstream {
    /// Forwards through `socket` to the resolvers `servers`, asked in this order, and starts the
    /// receiver thread.
    ///
    /// The socket should be bound (to port 0 for a random port) and not connected; it is switched
    /// to blocking mode with a read timeout (of a second, to notice when the [`Upstream`] is gone),
    /// and nothing else may receive on it. An IPv4 socket reaches only IPv4 resolvers; a
    /// dual-stack IPv6 one reaches both.
    ///
    /// Fails when the socket options cannot be set or the thread cannot be started.
    pub fn new(socket: UdpSocket, servers: Vec<SocketAddr>) -> io::Result<Arc<Self>> {
        socket.set_nonblocking(false)?;
        socket.set_read_timeout(Some(RECEIVER_POLL))?;
        let upstream = Arc::new(Self {
            socket,
            servers,
            waiting: Mutex::new(HashMap::new()),
        });
        let weak = Arc::downgrade(&upstream);
        thread::Builder::new()
            .name("dns-upstream".into())
            .spawn(move || receive_replies(&weak))?;
        Ok(upstream)
    }

    /// Asks the resolvers in order, each under a fresh message id and for up to
    /// [`UPSTREAM_TIMEOUT`], and returns the first reply, byte for byte but with the id of
    /// `query` put back. `None` when none replied in time (or `query` is shorter than an id).
    ///
    /// A resolver that cannot be sent to is skipped at once. Blocks the calling thread; any
    /// number of threads may ask at the same time.
    pub fn ask(&self, query: &[u8]) -> Option<Vec<u8>> {
        let client_id = query.get(..2)?;
        let mut reply = self
            .servers
            .iter()
            .find_map(|server| self.ask_one(query, *server))?;
        reply.get_mut(..2)?.copy_from_slice(client_id);
        Some(reply)
    }

    /// Sends `query` under a fresh random id to `server` and waits up to [`UPSTREAM_TIMEOUT`] for
    /// the receiver thread to hand over a response. `None` when none came in time, no id was
    /// free or the query could not be sent.
    fn ask_one(&self, query: &[u8], server: SocketAddr) -> Option<Vec<u8>> {
        let (sender, receiver) = mpsc::sync_channel(1);
        let registration = self.register(server, sender)?;
        let mut outgoing = query.to_vec();
        if let Some(header_id) = outgoing.get_mut(..2) {
            header_id.copy_from_slice(&registration.id.to_be_bytes());
        }
        self.socket.send_to(&outgoing, server).ok()?;
        let reply = receiver.recv_timeout(UPSTREAM_TIMEOUT).ok();
        drop(registration);
        // A reply handed over between the timeout and the removal of the waiter.
        reply.or_else(|| receiver.try_recv().ok())
    }

    /// Enters a waiter for a reply from `server` under a random message id that no other waiter
    /// holds; the returned guard removes it again. `None` when no free id turned up.
    fn register(&self, server: SocketAddr, reply: SyncSender<Vec<u8>>) -> Option<Registration<'_>> {
        let mut waiting = self.waiting();
        let id = (0..ID_ATTEMPTS)
            .map(|_| random_id())
            .find(|id| !waiting.contains_key(id))?;
        let server = canonical(server);
        waiting.insert(id, Waiter { server, reply });
        Some(Registration { upstream: self, id })
    }

    /// Hands `packet`, received from `from`, to the query waiting for it. Drops it when it is not
    /// a DNS response, no query waits under its id, it comes from another address than the one
    /// asked, or that query has a reply already.
    fn deliver(&self, packet: &[u8], from: SocketAddr) {
        let Some(id) = response_id(packet) else {
            return;
        };
        let waiting = self.waiting();
        if let Some(waiter) = waiting.get(&id) {
            if waiter.server == canonical(from) {
                let _ = waiter.reply.try_send(packet.to_vec());
            }
        }
    }

    /// The waiters. A panic while the lock was held cannot leave the map inconsistent, so a
    /// poisoned lock is used as it is.
    fn waiting(&self) -> MutexGuard<'_, HashMap<u16, Waiter>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A waiter entered in [`Upstream::waiting`]; removes it when dropped. Only its own guard removes
/// a waiter, so an id is never taken by a second query while the first still holds it.
struct Registration<'a> {
    /// Where the waiter is entered.
    upstream: &'a Upstream,
    /// The message id the query was sent under.
    id: u16,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.upstream.waiting().remove(&self.id);
    }
}

/// The receiver thread of an [`Upstream`]: reads replies from its socket and delivers them, until
/// the [`Upstream`] is gone.
fn receive_replies(upstream: &Weak<Upstream>) {
    let mut buffer = vec![0; MAX_DATAGRAM];
    while let Some(upstream) = upstream.upgrade() {
        match upstream.socket.recv_from(&mut buffer) {
            Ok((len, from)) => upstream.deliver(&buffer[..len], from),
            Err(e) if is_transient(&e) => {}
            Err(_) => thread::sleep(RECEIVER_ERROR_PAUSE),
        }
    }
}

/// The message id of `packet` when it has a full DNS header with the response bit set.
fn response_id(packet: &[u8]) -> Option<u16> {
    match packet {
        [high, low, flags, ..] if packet.len() >= 12 && flags & 0x80 != 0 => {
            Some(u16::from_be_bytes([*high, *low]))
        }
        _ => None,
    }
}

/// `address` with an IPv4-mapped IPv6 address (as a dual-stack socket reports IPv4 peers) turned
/// into plain IPv4, so that the resolver asked and the sender of its reply compare equal.
fn canonical(address: SocketAddr) -> SocketAddr {
    SocketAddr::new(address.ip().to_canonical(), address.port())
}

/// An unpredictable message id for a forwarded query (the keys of std's `RandomState` are
/// random and differ for every instance).
fn random_id() -> u16 {
    let hash = RandomState::new().hash_one((Instant::now(), thread::current().id()));
    (hash & 0xffff) as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::sync::mpsc;

    /// A records file with a unique name that is removed when dropped.
    struct TempRecords(PathBuf);

    impl TempRecords {
        fn new(text: &str) -> Self {
            static COUNT: AtomicUsize = AtomicUsize::new(0);
            let n = COUNT.fetch_add(1, Ordering::Relaxed);
            let path =
                std::env::temp_dir().join(format!("burrow-dns-test-{}-{n}", std::process::id()));
            let file = Self(path);
            file.write(text);
            file
        }

        /// Replaces the contents atomically, as the module documentation asks.
        fn write(&self, text: &str) {
            let tmp = self.0.with_extension("tmp");
            fs::write(&tmp, text).unwrap();
            fs::rename(&tmp, &self.0).unwrap();
        }
    }

    impl Drop for TempRecords {
        fn drop(&mut self) {
            let _ = fs::remove_file(&self.0);
        }
    }

    /// An [`Upstream`] forwarding to `servers` through a fresh socket on 127.0.0.1.
    fn upstream(servers: Vec<SocketAddr>) -> Arc<Upstream> {
        Upstream::new(UdpSocket::bind("127.0.0.1:0").unwrap(), servers).unwrap()
    }

    /// Starts `serve` on 127.0.0.1 in a thread, with an [`Upstream`] of its own forwarding to
    /// `servers`; returns its address.
    fn start_server(records: &TempRecords, servers: Vec<SocketAddr>) -> SocketAddr {
        start_server_with(records, upstream(servers))
    }

    /// Starts `serve` on 127.0.0.1 in a thread, forwarding through `upstream`; returns its address.
    fn start_server_with(records: &TempRecords, upstream: Arc<Upstream>) -> SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let path = records.0.clone();
        thread::spawn(move || serve(socket, &path, upstream));
        addr
    }

    /// A query message for `name` and `kind` with message id `id`; `name` keeps its case.
    fn query(id: u16, name: &str, kind: RecordType) -> Message {
        let mut message = Message::new(id, MessageType::Query, OpCode::Query);
        message.metadata.recursion_desired = true;
        message.add_query(Query::query(Name::from_ascii(name).unwrap(), kind));
        message
    }

    /// Sends `message` to `server` from a fresh socket and returns the decoded reply.
    fn ask(server: SocketAddr, message: &Message) -> Message {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        socket.send_to(&message.to_vec().unwrap(), server).unwrap();
        let mut buffer = vec![0; MAX_DATAGRAM];
        let len = socket.recv(&mut buffer).unwrap();
        let reply = Message::from_vec(&buffer[..len]).unwrap();
        assert_eq!(reply.metadata.id, message.metadata.id);
        assert_eq!(reply.metadata.message_type, MessageType::Response);
        reply
    }

    /// The addresses of the A records in `reply`, in order.
    fn a_records(reply: &Message) -> Vec<Ipv4Addr> {
        reply
            .answers
            .iter()
            .map(|record| match &record.data {
                RData::A(a) => a.0,
                other => panic!("not an A record: {other:?}"),
            })
            .collect()
    }

    /// A fake upstream resolver on 127.0.0.1 (see [`fake_upstream_delayed`]).
    struct FakeUpstream {
        /// Where it listens.
        addr: SocketAddr,
        /// Every query, in the order received.
        queries: mpsc::Receiver<Message>,
        /// The id of every reply, in the order sent (noted just before sending).
        replies: mpsc::Receiver<u16>,
    }

    /// A fake upstream resolver answering at once (see [`fake_upstream_delayed`]).
    fn fake_upstream() -> FakeUpstream {
        fake_upstream_delayed(Duration::ZERO)
    }

    /// A fake upstream resolver on 127.0.0.1 answering every query with the query's own id after
    /// a random delay below `max_delay`, so that replies leave in another order than the queries
    /// came. The answer is an A record for the name asked: the address spelt by its first label
    /// when that is an IPv4 address with dashes for dots (`198-51-100-7.example.`), otherwise
    /// 192.0.2.1. Stops after 10 s idle.
    fn fake_upstream_delayed(max_delay: Duration) -> FakeUpstream {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let (query_tx, queries) = mpsc::channel();
        let (reply_tx, replies) = mpsc::channel();
        thread::spawn(move || {
            let mut buffer = vec![0; MAX_DATAGRAM];
            while let Ok((len, peer)) = socket.recv_from(&mut buffer) {
                let request = Message::from_vec(&buffer[..len]).unwrap();
                let reply = fake_answer(&request).to_vec().unwrap();
                let id = request.metadata.id;
                let _ = query_tx.send(request);
                let mut rng = XorShift(u64::from(id) << 32 | 0x2545_f491);
                let millis = u64::try_from(max_delay.as_millis()).unwrap();
                let delay = Duration::from_millis(rng.next() % (millis + 1));
                let (socket, reply_tx) = (Arc::clone(&socket), reply_tx.clone());
                thread::spawn(move || {
                    thread::sleep(delay);
                    // Noted first, so that it is there by the time the reply is received.
                    let _ = reply_tx.send(id);
                    socket.send_to(&reply, peer).unwrap();
                });
            }
        });
        FakeUpstream {
            addr,
            queries,
            replies,
        }
    }

    /// The fake upstream's answer to `request` (see [`fake_upstream_delayed`]).
    fn fake_answer(request: &Message) -> Message {
        let mut reply = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
        reply.metadata.recursion_available = true;
        let question = request.queries[0].clone();
        let name = question.name().clone();
        let spelt = name
            .iter()
            .next()
            .and_then(|label| std::str::from_utf8(label).ok())
            .and_then(|label| label.replace('-', ".").parse().ok());
        let address = spelt.unwrap_or(Ipv4Addr::new(192, 0, 2, 1));
        reply.add_query(question);
        reply.add_answer(Record::from_rdata(name, 300, RData::A(A(address))));
        reply
    }

    /// An address on 127.0.0.1 where nothing listens (a port just freed).
    fn closed_port() -> SocketAddr {
        UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    }

    /// A tiny deterministic generator for the fuzz-ish tests.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn bytes(&mut self, max_len: usize) -> Vec<u8> {
            let len = (self.next() % (max_len as u64 + 1)) as usize;
            (0..len).map(|_| self.next() as u8).collect()
        }
    }

    const WEB: &str = "web 10.88.0.2\nWeb. 10.88.0.3\n";

    #[test]
    fn parse_skips_comments_bad_lines_and_repeats() {
        let records = Records::parse(
            "# header\n\n web\t10.0.0.1 # trailing\nweb 10.0.0.1\nbad 999.1.1.1\n\
             three fields here\nonly\nbad_name! 10.0.0.9\n1.2.3.4 web\ndb.net. 10.0.0.2\n",
        );
        assert_eq!(records.lookup("web"), vec![Ipv4Addr::new(10, 0, 0, 1)]);
        assert_eq!(records.lookup("DB.NET"), vec![Ipv4Addr::new(10, 0, 0, 2)]);
        assert_eq!(records.lookup("db.net."), vec![Ipv4Addr::new(10, 0, 0, 2)]);
        assert!(records.lookup("bad").is_empty());
        assert!(records.lookup("three").is_empty());
        assert!(records.lookup("bad_name!").is_empty());
        assert!(records.lookup("1.2.3.4").is_empty());
        assert!(records.lookup("nothing").is_empty());
    }

    #[test]
    fn a_known_address_has_its_first_name_for_ptr() {
        let records = TempRecords::new("web 10.0.0.1\nalias 10.0.0.1\ndb 10.0.0.2\n");
        let server = start_server(&records, vec![]);
        let reply = ask(server, &query(7, "1.0.0.10.in-addr.arpa.", RecordType::PTR));
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        let names: Vec<String> = reply
            .answers
            .iter()
            .map(|r| match &r.data {
                RData::PTR(p) => p.0.to_ascii(),
                other => panic!("not a PTR record: {other:?}"),
            })
            .collect();
        assert_eq!(names, ["web."]);
        assert_eq!(
            reverse_address(&Name::from_ascii("2.0.0.10.IN-ADDR.ARPA").unwrap()),
            Some(Ipv4Addr::new(10, 0, 0, 2))
        );
        for other in [
            "1.0.10.in-addr.arpa",
            "x.0.0.10.in-addr.arpa",
            "1.0.0.10.example",
        ] {
            assert_eq!(
                reverse_address(&Name::from_ascii(other).unwrap()),
                None,
                "{other}"
            );
        }
    }

    #[test]
    fn lookup_rotates() {
        let records = Records::parse("a 10.0.0.1\na 10.0.0.2\na 10.0.0.3\n");
        let first = records.lookup("a");
        let second = records.lookup("A.");
        let third = records.lookup("a");
        assert_eq!(first, [1, 2, 3].map(|n| Ipv4Addr::new(10, 0, 0, n)));
        assert_eq!(second, [2, 3, 1].map(|n| Ipv4Addr::new(10, 0, 0, n)));
        assert_eq!(third, [3, 1, 2].map(|n| Ipv4Addr::new(10, 0, 0, n)));
        assert_eq!(records.lookup("a"), first);
    }

    #[test]
    fn known_name_gets_both_addresses_in_rotating_order() {
        let records = TempRecords::new(WEB);
        let server = start_server(&records, Vec::new());
        let first = ask(server, &query(1, "web.", RecordType::A));
        let second = ask(server, &query(2, "web.", RecordType::A));
        assert_eq!(first.metadata.response_code, ResponseCode::NoError);
        assert!(first.metadata.authoritative);
        assert_eq!(first.queries, query(1, "web.", RecordType::A).queries);
        let (a, b) = (Ipv4Addr::new(10, 88, 0, 2), Ipv4Addr::new(10, 88, 0, 3));
        assert_eq!(a_records(&first), vec![a, b]);
        assert_eq!(a_records(&second), vec![b, a]);
        assert!(first.answers.iter().all(|record| record.ttl == TTL));
    }

    #[test]
    fn names_match_in_any_case() {
        let records = TempRecords::new(WEB);
        let server = start_server(&records, Vec::new());
        let reply = ask(server, &query(7, "WeB", RecordType::A));
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert_eq!(a_records(&reply).len(), 2);
        // The answer repeats the name as the client spelled it.
        assert_eq!(reply.answers[0].name.to_ascii(), "WeB.");
    }

    #[test]
    fn aaaa_for_known_name_is_empty_noerror() {
        let records = TempRecords::new(WEB);
        let server = start_server(&records, Vec::new());
        let reply = ask(server, &query(3, "web.", RecordType::AAAA));
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert!(reply.answers.is_empty());
        // An AAAA query does not advance the round robin.
        assert_eq!(
            a_records(&ask(server, &query(4, "web.", RecordType::A)))[0],
            Ipv4Addr::new(10, 88, 0, 2)
        );
    }

    #[test]
    fn unknown_name_is_forwarded_and_relayed_with_client_id() {
        let records = TempRecords::new(WEB);
        let fake = fake_upstream();
        // The closed port is asked first and, ICMP errors not being reported on the unconnected
        // upstream socket, waited for in vain until the timeout.
        let server = start_server(&records, vec![closed_port(), fake.addr]);
        let started = Instant::now();
        let reply = ask(server, &query(0xbeef, "example.com.", RecordType::A));
        assert!(started.elapsed() >= UPSTREAM_TIMEOUT);
        assert_eq!(reply.metadata.id, 0xbeef);
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert_eq!(a_records(&reply), vec![Ipv4Addr::new(192, 0, 2, 1)]);
        let forwarded = fake.queries.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(
            forwarded.queries,
            query(0, "example.com.", RecordType::A).queries
        );
        assert!(forwarded.metadata.recursion_desired);
    }

    #[test]
    fn unreachable_upstream_gives_servfail() {
        let records = TempRecords::new(WEB);
        let server = start_server(&records, vec![closed_port()]);
        let reply = ask(server, &query(9, "example.com.", RecordType::A));
        assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
        assert_eq!(
            reply.queries,
            query(9, "example.com.", RecordType::A).queries
        );
    }

    #[test]
    fn silent_upstream_gives_servfail_after_timeout() {
        let records = TempRecords::new(WEB);
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let server = start_server(&records, vec![silent.local_addr().unwrap()]);
        let started = Instant::now();
        let reply = ask(server, &query(10, "example.com.", RecordType::A));
        assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
        assert!(started.elapsed() >= UPSTREAM_TIMEOUT);
        // Local names are still answered while a forward waits.
        let local = ask(server, &query(11, "web", RecordType::A));
        assert_eq!(a_records(&local).len(), 2);
    }

    #[test]
    fn records_file_changes_are_picked_up() {
        let records = TempRecords::new(WEB);
        let server = start_server(&records, Vec::new());
        assert_eq!(
            a_records(&ask(server, &query(1, "web", RecordType::A))).len(),
            2
        );
        records.write("web 10.88.0.9\n");
        let reply = ask(server, &query(2, "web", RecordType::A));
        assert_eq!(a_records(&reply), vec![Ipv4Addr::new(10, 88, 0, 9)]);
        fs::remove_file(&records.0).unwrap();
        let reply = ask(server, &query(3, "web", RecordType::A));
        assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
    }

    #[test]
    fn garbage_is_ignored_and_server_keeps_answering() {
        let records = TempRecords::new(WEB);
        let server = start_server(&records, Vec::new());
        let noise = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let valid = query(5, "web.", RecordType::A).to_vec().unwrap();
        // Batches small enough not to overflow the server's receive buffer, which would drop
        // the checking query however well the server copes.
        for batch in 0..20 {
            noise.send_to(&[], server).unwrap();
            for _ in 0..50 {
                noise.send_to(&rng.bytes(600), server).unwrap();
                let mut mutated = valid.clone();
                let at = (rng.next() as usize) % mutated.len();
                mutated[at] = rng.next() as u8;
                noise.send_to(&mutated, server).unwrap();
            }
            let reply = ask(server, &query(batch, "web.", RecordType::A));
            assert_eq!(a_records(&reply).len(), 2);
        }
    }

    #[test]
    fn decide_never_panics_on_random_or_mutated_input() {
        let records = Records::parse(WEB);
        let mut rng = XorShift(0x0123_4567_89ab_cdef);
        let valid = query(5, "web.", RecordType::A).to_vec().unwrap();
        for _ in 0..20_000 {
            let _ = decide_inner(&rng.bytes(300), &records);
            let mut mutated = valid.clone();
            for _ in 0..1 + rng.next() % 4 {
                let at = (rng.next() as usize) % mutated.len();
                mutated[at] = rng.next() as u8;
            }
            let _ = decide_inner(&mutated, &records);
        }
    }

    #[test]
    fn decide_handles_other_opcodes_questions_and_responses() {
        let records = Records::parse(WEB);
        let mut notify = query(1, "web.", RecordType::A);
        notify.metadata.op_code = OpCode::Notify;
        let Action::Reply(reply) = decide(&notify.to_vec().unwrap(), &records) else {
            panic!("no reply to NOTIFY");
        };
        assert_eq!(
            Message::from_vec(&reply).unwrap().metadata.response_code,
            ResponseCode::NotImp
        );

        let empty = Message::new(2, MessageType::Query, OpCode::Query);
        let Action::Reply(reply) = decide(&empty.to_vec().unwrap(), &records) else {
            panic!("no reply to a question-less query");
        };
        assert_eq!(
            Message::from_vec(&reply).unwrap().metadata.response_code,
            ResponseCode::FormErr
        );

        let mut response = query(3, "web.", RecordType::A);
        response.metadata.message_type = MessageType::Response;
        assert_eq!(
            decide(&response.to_vec().unwrap(), &records),
            Action::Ignore
        );
        assert_eq!(decide(b"\x00\x01", &records), Action::Ignore);
        assert_eq!(
            decide(
                &query(4, "other.", RecordType::A).to_vec().unwrap(),
                &records
            ),
            Action::Forward
        );
    }

    #[test]
    fn large_answers_are_cut_to_fit_udp() {
        let text: String = (0..60).map(|n| format!("many 10.1.0.{n}\n")).collect();
        let records = Records::parse(&text);
        let Action::Reply(plain) = decide(
            &query(1, "many.", RecordType::A).to_vec().unwrap(),
            &records,
        ) else {
            panic!("no reply");
        };
        assert!(plain.len() <= 512);
        let plain = Message::from_vec(&plain).unwrap();
        assert!(!plain.answers.is_empty() && plain.answers.len() < 60);
        assert!(!plain.metadata.truncation);

        let mut with_edns = query(2, "many.", RecordType::A);
        let mut edns = Edns::new();
        edns.set_max_payload(4096);
        with_edns.set_edns(edns);
        let Action::Reply(big) = decide(&with_edns.to_vec().unwrap(), &records) else {
            panic!("no reply");
        };
        let big = Message::from_vec(&big).unwrap();
        assert_eq!(big.answers.len(), 60);
        assert!(big.edns.is_some());
    }

    #[test]
    fn wire_names_with_odd_bytes_are_never_known() {
        let name = Name::from_labels(vec![b"we.b".to_vec()]).unwrap();
        assert_eq!(normalise_wire(&name), None);
        let name = Name::from_labels(vec![b"web".to_vec()]).unwrap();
        assert_eq!(normalise_wire(&name).as_deref(), Some("web"));
    }

    #[test]
    fn two_servers_share_one_upstream_with_replies_out_of_order() {
        const PER_SERVER: u8 = 25;
        let fake = fake_upstream_delayed(Duration::from_millis(300));
        // As in burrow: one socket bound to 0.0.0.0:0, shared by the servers of all networks.
        let outside = UdpSocket::bind("0.0.0.0:0").unwrap();
        let shared = Upstream::new(outside, vec![fake.addr]).unwrap();
        let first_records = TempRecords::new("alpha 10.88.0.2\n");
        let second_records = TempRecords::new("beta 10.89.0.2\n");
        let servers = [
            start_server_with(&first_records, Arc::clone(&shared)),
            start_server_with(&second_records, Arc::clone(&shared)),
        ];
        drop(shared);

        let start = Arc::new(std::sync::Barrier::new(2 * usize::from(PER_SERVER)));
        let mut clients = Vec::new();
        for (which, server) in (1..=2u8).zip(servers) {
            for n in 0..PER_SERVER {
                let start = Arc::clone(&start);
                clients.push(thread::spawn(move || {
                    let expected = Ipv4Addr::new(198, 51, which, n);
                    let name = format!("198-51-{which}-{n}.example.");
                    let id = u16::from(which) << 8 | u16::from(n);
                    start.wait();
                    let reply = ask(server, &query(id, &name, RecordType::A));
                    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
                    assert_eq!(reply.queries, query(id, &name, RecordType::A).queries);
                    assert_eq!(a_records(&reply), vec![expected]);
                }));
            }
        }
        for client in clients {
            client.join().unwrap();
        }

        // Each server answers its own network's names and forwards the other's.
        let local = ask(servers[0], &query(1, "alpha", RecordType::A));
        assert!(local.metadata.authoritative);
        assert_eq!(a_records(&local), vec![Ipv4Addr::new(10, 88, 0, 2)]);
        let local = ask(servers[1], &query(2, "beta", RecordType::A));
        assert_eq!(a_records(&local), vec![Ipv4Addr::new(10, 89, 0, 2)]);
        let forwarded = ask(servers[1], &query(3, "alpha", RecordType::A));
        assert!(!forwarded.metadata.authoritative);
        assert_eq!(a_records(&forwarded), vec![Ipv4Addr::new(192, 0, 2, 1)]);

        // The replies really did come back in another order than the queries went out.
        let asked: Vec<u16> = fake.queries.try_iter().map(|q| q.metadata.id).collect();
        let answered: Vec<u16> = fake.replies.try_iter().collect();
        assert_eq!(asked.len(), 2 * usize::from(PER_SERVER) + 1);
        assert_eq!(answered.len(), asked.len());
        assert_ne!(asked, answered);
    }

    #[test]
    fn upstream_drops_forged_unknown_and_non_response_replies() {
        let resolver = UdpSocket::bind("127.0.0.1:0").unwrap();
        let forger = UdpSocket::bind("127.0.0.1:0").unwrap();
        let upstream = upstream(vec![resolver.local_addr().unwrap()]);
        let asking = {
            let upstream = Arc::clone(&upstream);
            let request = query(0x1234, "example.com.", RecordType::A);
            thread::spawn(move || upstream.ask(&request.to_vec().unwrap()))
        };
        let mut buffer = vec![0; MAX_DATAGRAM];
        let (len, peer) = resolver.recv_from(&mut buffer).unwrap();
        let request = Message::from_vec(&buffer[..len]).unwrap();
        let id = request.metadata.id;
        let reply_with = |id: u16, address: [u8; 4], response: bool| {
            let mut reply = fake_answer(&request);
            reply.metadata.id = id;
            reply.answers[0].data = RData::A(A::from(Ipv4Addr::from(address)));
            if !response {
                reply.metadata.message_type = MessageType::Query;
            }
            reply.to_vec().unwrap()
        };
        // Right id, wrong sender; wrong id, right sender; right id and sender but not a
        // response; a truncated header; then the real reply.
        forger
            .send_to(&reply_with(id, [6, 6, 6, 1], true), peer)
            .unwrap();
        let other_id = id.wrapping_add(1);
        resolver
            .send_to(&reply_with(other_id, [6, 6, 6, 2], true), peer)
            .unwrap();
        resolver
            .send_to(&reply_with(id, [6, 6, 6, 3], false), peer)
            .unwrap();
        resolver.send_to(&id.to_be_bytes(), peer).unwrap();
        thread::sleep(Duration::from_millis(50));
        resolver
            .send_to(&reply_with(id, [192, 0, 2, 7], true), peer)
            .unwrap();
        // A repeated reply is dropped too (no one waits for it any more).
        resolver
            .send_to(&reply_with(id, [6, 6, 6, 4], true), peer)
            .unwrap();

        let reply = Message::from_vec(&asking.join().unwrap().unwrap()).unwrap();
        assert_eq!(reply.metadata.id, 0x1234);
        assert_eq!(a_records(&reply), vec![Ipv4Addr::new(192, 0, 2, 7)]);
        assert!(upstream.waiting().is_empty());
    }

    #[test]
    fn upstream_skips_a_resolver_it_cannot_send_to_at_once() {
        let fake = fake_upstream();
        // An IPv4 socket cannot send to an IPv6 resolver.
        let upstream = upstream(vec!["[::1]:53".parse().unwrap(), fake.addr]);
        let started = Instant::now();
        let request = query(77, "example.com.", RecordType::A).to_vec().unwrap();
        let reply = Message::from_vec(&upstream.ask(&request).unwrap()).unwrap();
        assert!(started.elapsed() < UPSTREAM_TIMEOUT);
        assert_eq!(reply.metadata.id, 77);
        assert_eq!(a_records(&reply), vec![Ipv4Addr::new(192, 0, 2, 1)]);
    }

    #[test]
    fn dual_stack_upstream_socket_accepts_ipv4_replies() {
        let socket = UdpSocket::bind("[::]:0")
            .expect("this test needs IPv6 (an AF_INET6 socket); the host has it disabled");
        let fake = fake_upstream();
        let upstream = Upstream::new(socket, vec![fake.addr]).unwrap();
        let request = query(78, "10-0-0-1.example.", RecordType::A);
        let reply = upstream.ask(&request.to_vec().unwrap()).unwrap();
        let reply = Message::from_vec(&reply).unwrap();
        assert_eq!(a_records(&reply), vec![Ipv4Addr::new(10, 0, 0, 1)]);
    }

    #[test]
    fn upstream_without_resolvers_answers_none() {
        let upstream = upstream(Vec::new());
        let request = query(79, "example.com.", RecordType::A).to_vec().unwrap();
        assert_eq!(upstream.ask(&request), None);
        assert_eq!(upstream.ask(b"\x00"), None);
    }

    #[test]
    fn waiting_ids_are_unique_and_released() {
        let upstream = upstream(Vec::new());
        let server = closed_port();
        let mut registrations = Vec::new();
        for _ in 0..4096 {
            let (sender, _receiver) = mpsc::sync_channel(1);
            registrations.push(upstream.register(server, sender).unwrap());
        }
        let mut ids: Vec<u16> = registrations.iter().map(|r| r.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), registrations.len());
        assert_eq!(upstream.waiting().len(), registrations.len());
        drop(registrations);
        assert!(upstream.waiting().is_empty());
    }

    #[test]
    fn upstream_socket_is_closed_after_the_last_reference_goes() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let upstream = Upstream::new(socket, Vec::new()).unwrap();
        assert!(UdpSocket::bind(addr).is_err());
        drop(upstream);
        let deadline = Instant::now() + RECEIVER_POLL * 5;
        while UdpSocket::bind(addr).is_err() {
            assert!(Instant::now() < deadline, "socket still open");
            thread::sleep(Duration::from_millis(20));
        }
    }
}
