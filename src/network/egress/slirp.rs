//! The network holder's way out, in-process (the default egress): libslirp, loaded at run
//! time from `libslirp.so.0`, turns the Ethernet frames of the holder's `tap0` into ordinary
//! sockets of the user's in the host's network namespace, as slirp4netns does, without a
//! separate program. `burrow __egress` runs it (`egress/mod.rs`); the holder's start spawns it.
//!
//! The guest network is slirp4netns's: 10.0.2.0/24, the gateway 10.0.2.2 leads to the
//! host's loopback (the holder's ruleset closes it but to networks that open it), 10.0.2.3
//! forwards DNS to the host's resolvers, the holder's end is 10.0.2.100. IPv4 only; no DHCP,
//! no port forwards (published ports go through the holder's control socket).
//!
//! [`run`] must be called on a thread of the network namespace whose sockets carry the
//! traffic (the host's), and it keeps that thread. libslirp writes to its sockets without
//! MSG_NOSIGNAL: the process must ignore SIGPIPE, as Rust programs do unless told otherwise.
#![allow(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::ffi::{CStr, c_char, c_int, c_void};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The file name libslirp is loaded from (the soname of libslirp0).
const SONAME: &str = "libslirp.so.0";

/// The guest network, its gateway (the host) and its DNS forwarder.
const NETWORK: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 0);
const NETMASK: Ipv4Addr = Ipv4Addr::new(255, 255, 255, 0);
pub(super) const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
const NAMESERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);
/// Where libslirp's DHCP server would start leasing (it is disabled where libslirp allows).
const DHCP_START: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
/// The holder's end of the link, on its `tap0`.
pub(super) const GUEST: &str = "10.0.2.100/24";
/// The holder's tap device (the ruleset masquerades what leaves through it).
pub const TAP: &str = "tap0";
/// The tap's MTU, as burrow runs slirp4netns (`--mtu=65520`): big frames, few turns.
pub const MTU: u32 = 65520;

/// The exit status of `burrow __egress` when libslirp cannot be loaded (the caller falls
/// back to slirp4netns).
pub const NO_LIBRARY: i32 = 3;

/// The MTU range libslirp accepts (IF_MTU_MIN, IF_MTU_MAX in 4.x).
const MTU_RANGE: std::ops::RangeInclusive<u32> = 68..=65521;

/// Room for the largest frame a tap delivers: 65535 bytes of MTU, Ethernet and VLAN headers.
const FRAME_BUFFER: usize = 1 << 17;

/// Frames taken from the tap in one turn of the loop before the sockets get theirs.
const FRAMES_PER_TURN: usize = 256;

/// Why libslirp could not be loaded or stopped carrying traffic.
#[derive(Debug, thiserror::Error)]
pub enum SlirpError {
    /// libslirp.so.0 is not installed (or not loadable).
    #[error("cannot load {SONAME} ({0}); install the libslirp0 package")]
    Load(libloading::Error),
    /// The installed libslirp lacks a function burrow calls.
    #[error("libslirp {version} lacks {symbol}; install libslirp0 4.3 or later")]
    Symbol {
        version: String,
        symbol: &'static str,
    },
    /// The installed libslirp predates the configuration burrow passes.
    #[error("libslirp {version} is too old; install libslirp0 4.3 or later")]
    TooOld { version: String },
    /// The MTU is out of the range libslirp accepts.
    #[error("MTU {0} is out of libslirp's range (68 to 65521)")]
    Mtu(u32),
    /// slirp_new refused the configuration (libslirp printed why on stderr).
    #[error("libslirp {version} refused the network configuration (its message precedes this one)")]
    Config { version: String },
    /// The tap device failed: typically its network namespace is gone.
    #[error("the tap device failed ({0}); its network namespace may be gone")]
    Tap(#[source] io::Error),
    /// poll(2) failed.
    #[error("cannot wait for network events: {0}")]
    Poll(#[source] io::Error),
    /// The tap (or the proxy's ends) could not be had from the holder's namespace.
    #[error("cannot make {TAP} in the network holder's namespace")]
    HolderEnds(#[source] super::tap::HolderEndsError),
}

/// libslirp, loaded from libslirp.so.0; Err when it is not installed.
pub struct Library {
    api: Api,
    version: String,
    /// SlirpConfig version passed to slirp_new: 4 from libslirp 4.7 on, 3 before.
    config_version: u32,
    /// Keeps the functions in `api` mapped.
    _lib: libloading::Library,
}

impl std::fmt::Debug for Library {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Library")
            .field("version", &self.version)
            .field("config_version", &self.config_version)
            .finish_non_exhaustive()
    }
}

/// The functions of libslirp that the loop calls.
struct Api {
    new: unsafe extern "C" fn(*const SlirpConfig, *const SlirpCb, *mut c_void) -> *mut Slirp,
    cleanup: unsafe extern "C" fn(*mut Slirp),
    pollfds_fill: unsafe extern "C" fn(*mut Slirp, *mut u32, AddPollCb, *mut c_void),
    pollfds_poll: unsafe extern "C" fn(*mut Slirp, c_int, GetREventsCb, *mut c_void),
    input: unsafe extern "C" fn(*mut Slirp, *const u8, c_int),
    /// Present from libslirp 4.7 on; timers then go through timer_new_opaque.
    handle_timer: Option<unsafe extern "C" fn(*mut Slirp, c_int, *mut c_void)>,
}

impl Library {
    /// Loads libslirp.so.0 and the functions burrow uses.
    pub fn load() -> Result<Library, SlirpError> {
        Library::load_from(SONAME)
    }

    fn load_from(soname: &str) -> Result<Library, SlirpError> {
        // SAFETY: libslirp's initialisers (and glib's, which it links) only set up their own
        // globals; loading it has no other effect on the process.
        let lib = unsafe { libloading::Library::new(soname) }.map_err(SlirpError::Load)?;
        // SAFETY: the type is slirp_version_string's in libslirp.h.
        let version_string: unsafe extern "C" fn() -> *const c_char =
            unsafe { symbol(&lib, "unknown", "slirp_version_string")? };
        // SAFETY: slirp_version_string returns a static NUL-terminated string.
        let version = unsafe { CStr::from_ptr(version_string()) }
            .to_string_lossy()
            .into_owned();
        let v = version.as_str();
        // SAFETY (all below): each type is that of the function of the same name in
        // libslirp.h (4.7), which has kept these signatures since 4.1.
        let api = unsafe {
            Api {
                new: symbol(&lib, v, "slirp_new")?,
                cleanup: symbol(&lib, v, "slirp_cleanup")?,
                pollfds_fill: symbol(&lib, v, "slirp_pollfds_fill")?,
                pollfds_poll: symbol(&lib, v, "slirp_pollfds_poll")?,
                input: symbol(&lib, v, "slirp_input")?,
                handle_timer: symbol(&lib, v, "slirp_handle_timer").ok(),
            }
        };
        let config_version = match parse_version(v) {
            Some(n) if n >= (4, 7) => 4,
            Some(n) if n >= (4, 3) => 3,
            Some(_) => return Err(SlirpError::TooOld { version }),
            // An unknown scheme is taken for a newer libslirp; slirp_new says if not.
            None => 4,
        };
        Ok(Library {
            api,
            version,
            config_version,
            _lib: lib,
        })
    }

    /// The version libslirp reports, e.g. "4.7.0".
    pub fn version(&self) -> &str {
        &self.version
    }
}

/// Looks up `name` in `lib` as a value of type `T`.
///
/// # Safety
/// `T` must be the type of the symbol (a function pointer type matching its C signature).
unsafe fn symbol<T: Copy>(
    lib: &libloading::Library,
    version: &str,
    name: &'static str,
) -> Result<T, SlirpError> {
    // SAFETY: the caller vouches for the type; the value is copied out while `lib` stays
    // loaded, and Library keeps it loaded as long as the copy is used.
    unsafe { lib.get::<T>(name.as_bytes()) }
        .map(|s| *s)
        .map_err(|_| SlirpError::Symbol {
            version: version.to_owned(),
            symbol: name,
        })
}

/// Major and minor of a version string such as "4.7.0".
fn parse_version(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.split('.');
    let major = parts.next()?.trim().parse().ok()?;
    let minor = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()?;
    Some((major, minor))
}

/// Opens /dev/net/tun as a tap device named `name` (IFF_TAP | IFF_NO_PI) with MTU `mtu`, in
/// the calling thread's network namespace. The descriptor is close-on-exec.
pub fn open_tap(name: &str, mtu: u32) -> io::Result<OwnedFd> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(['\0', '/']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a valid interface name"),
        ));
    }
    let tun = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open /dev/net/tun: {e}")))?;
    // SAFETY: ifreq is plain data, for which all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as c_char;
    }
    ifr.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes one ifreq, which `ifr` is, on a /dev/net/tun fd.
    if unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, &mut ifr) } < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("cannot create tap device {name}: {e}"),
        ));
    }
    ifr.ifr_ifru.ifru_mtu = c_int::try_from(mtu)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("MTU {mtu}")))?;
    let sock = std::net::UdpSocket::bind("0.0.0.0:0")?;
    // SAFETY: SIOCSIFMTU reads one ifreq (name and MTU), which `ifr` is, on an inet socket.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFMTU, &ifr) } < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("cannot set the MTU of {name} to {mtu}: {e}"),
        ));
    }
    Ok(tun.into())
}

/// Runs slirp on `tap` until `exit` becomes readable (EOF/hangup: the holder is gone) or a
/// fatal error. Must run on a thread in the network namespace whose sockets carry the
/// traffic (the host's): libslirp makes its sockets there. `mtu` is the MTU and MRU of the
/// guest link (the tap's MTU). `ready` is called once libslirp took the configuration.
pub fn run(
    lib: &Library,
    tap: OwnedFd,
    exit: BorrowedFd<'_>,
    mtu: u32,
    ready: impl FnOnce(),
) -> Result<(), SlirpError> {
    if !MTU_RANGE.contains(&mtu) {
        return Err(SlirpError::Mtu(mtu));
    }
    set_nonblocking(tap.as_raw_fd()).map_err(SlirpError::Tap)?;
    let config = config(lib.config_version, mtu);
    let callbacks = if lib.config_version >= 4 && lib.api.handle_timer.is_some() {
        &CALLBACKS_OPAQUE_TIMERS
    } else {
        &CALLBACKS
    };
    let state = Box::into_raw(Box::new(State::new(tap.as_raw_fd())));
    // SAFETY: config and callbacks are valid for the call; callbacks is static and state
    // stays allocated until Instance::drop, after slirp_cleanup. slirp_new copies what it
    // keeps from config (its pointers are all null).
    let slirp = unsafe { (lib.api.new)(&config, callbacks, state.cast()) };
    if slirp.is_null() {
        // SAFETY: state came from Box::into_raw above and libslirp holds no copy of it.
        drop(unsafe { Box::from_raw(state) });
        return Err(SlirpError::Config {
            version: lib.version.clone(),
        });
    }
    let instance = Instance {
        api: &lib.api,
        slirp,
        state,
    };
    ready();
    let result = instance.run(exit);
    drop(instance);
    drop(tap);
    result
}

/// One slirp stack and the state its callbacks share; dropping it frees both.
struct Instance<'a> {
    api: &'a Api,
    slirp: *mut Slirp,
    /// Allocated with Box::into_raw; freed in drop, after slirp_cleanup.
    state: *const State,
}

impl Drop for Instance<'_> {
    fn drop(&mut self) {
        // SAFETY: slirp came from slirp_new and is cleaned up once; libslirp calls no
        // callback after slirp_cleanup, so state can then go.
        unsafe {
            (self.api.cleanup)(self.slirp);
            drop(Box::from_raw(self.state.cast_mut()));
        }
    }
}

/// Index of the tap and of `exit` among the polled descriptors; libslirp's come after.
const TAP_FD: usize = 0;
const EXIT_FD: usize = 1;

impl Instance<'_> {
    fn state(&self) -> &State {
        // SAFETY: state is valid until drop; it is only ever shared (interior mutability).
        unsafe { &*self.state }
    }

    fn run(&self, exit: BorrowedFd<'_>) -> Result<(), SlirpError> {
        let state = self.state();
        let opaque = self.state.cast_mut().cast::<c_void>();
        let mut frame = vec![0u8; FRAME_BUFFER];
        let mut due = Vec::new();
        loop {
            {
                let mut fds = state.pollfds.borrow_mut();
                fds.clear();
                fds.push(pollfd(state.tap, libc::POLLIN));
                fds.push(pollfd(exit.as_raw_fd(), libc::POLLIN));
            }
            let mut slirp_timeout = u32::MAX;
            // SAFETY: slirp is live; add_poll gets `opaque`, the State it expects.
            unsafe { (self.api.pollfds_fill)(self.slirp, &mut slirp_timeout, add_poll, opaque) };
            let timeout = poll_timeout(slirp_timeout, state.next_timer(now_ms()));
            let (ready, tap_events, exit_events) = {
                let mut fds = state.pollfds.borrow_mut();
                // SAFETY: fds is a valid array of fds.len() pollfd entries.
                let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
                if n < 0 {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(SlirpError::Poll(e));
                    }
                    fds.iter_mut().for_each(|p| p.revents = 0);
                }
                (n >= 0, fds[TAP_FD].revents, fds[EXIT_FD].revents)
            };
            if exit_events != 0 {
                return Ok(());
            }
            // The guest's frames first: its acknowledgements make room in libslirp's
            // buffers before the sockets are read.
            if tap_events != 0 {
                self.read_tap(&mut frame)?;
            }
            // SAFETY: slirp is live; get_revents gets the State it expects.
            unsafe {
                (self.api.pollfds_poll)(self.slirp, c_int::from(!ready), get_revents, opaque)
            };
            self.fire_timers(&mut due);
            if let Some(e) = state.fatal.take() {
                return Err(SlirpError::Tap(e));
            }
        }
    }

    /// Hands libslirp the frames waiting on the tap, up to FRAMES_PER_TURN.
    fn read_tap(&self, frame: &mut [u8]) -> Result<(), SlirpError> {
        let tap = self.state().tap;
        let mut frames = 0;
        while frames < FRAMES_PER_TURN {
            // SAFETY: frame is a writable buffer of frame.len() bytes.
            let n = unsafe { libc::read(tap, frame.as_mut_ptr().cast(), frame.len()) };
            match n {
                0 => return Ok(()),
                n if n > 0 => {
                    frames += 1;
                    // SAFETY: slirp is live; the first n bytes of frame are one frame, and
                    // n <= FRAME_BUFFER fits in a c_int.
                    unsafe { (self.api.input)(self.slirp, frame.as_ptr(), n as c_int) };
                }
                _ => {
                    let e = io::Error::last_os_error();
                    match e.kind() {
                        io::ErrorKind::WouldBlock => return Ok(()),
                        io::ErrorKind::Interrupted => {}
                        _ => return Err(SlirpError::Tap(e)),
                    }
                }
            }
        }
        Ok(())
    }

    /// Fires the timers whose time has come (each once per turn).
    fn fire_timers(&self, due: &mut Vec<Fire>) {
        due.clear();
        self.state().take_due(now_ms(), due);
        for fire in due.drain(..) {
            match fire {
                Fire::Opaque { id, cb_opaque } => {
                    if let Some(handle_timer) = self.api.handle_timer {
                        // SAFETY: slirp is live; id and cb_opaque are what it gave
                        // timer_new_opaque for this timer.
                        unsafe { handle_timer(self.slirp, id, cb_opaque) };
                    }
                }
                // SAFETY: cb and cb_opaque are what libslirp gave timer_new for this timer.
                Fire::Callback { cb, cb_opaque } => unsafe { cb(cb_opaque) },
            }
        }
    }
}

/// A poll(2) timeout in milliseconds from libslirp's (u32::MAX: none) and the next timer's.
fn poll_timeout(slirp_ms: u32, timer_ms: Option<i64>) -> c_int {
    let slirp_ms = (slirp_ms != u32::MAX).then_some(i64::from(slirp_ms));
    match (slirp_ms, timer_ms) {
        (None, None) => -1,
        (a, b) => a
            .into_iter()
            .chain(b)
            .min()
            .map_or(-1, |ms| ms.clamp(0, i64::from(c_int::MAX)) as c_int),
    }
}

fn pollfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on a descriptor the caller owns; no memory is involved.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// CLOCK_MONOTONIC in nanoseconds: libslirp's clock (its timers count in its milliseconds).
fn now_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which ts is; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    // time_t and c_long are narrower than i64 on 32-bit targets.
    #[allow(clippy::unnecessary_cast)]
    let (sec, nsec) = (ts.tv_sec as i64, ts.tv_nsec as i64);
    sec * 1_000_000_000 + nsec
}

fn now_ms() -> i64 {
    now_ns() / 1_000_000
}

fn ipv4(a: Ipv4Addr) -> libc::in_addr {
    libc::in_addr {
        s_addr: u32::from_ne_bytes(a.octets()),
    }
}

/// The slirp_new configuration: IPv4 only, host loopback reachable, no DHCP where the
/// version allows, DNS forwarded.
fn config(version: u32, mtu: u32) -> SlirpConfig {
    let no_in6 = libc::in6_addr { s6_addr: [0; 16] };
    SlirpConfig {
        version,
        restricted: 0,
        in_enabled: true,
        vnetwork: ipv4(NETWORK),
        vnetmask: ipv4(NETMASK),
        vhost: ipv4(GATEWAY),
        in6_enabled: false,
        vprefix_addr6: no_in6,
        vprefix_len: 0,
        vhost6: no_in6,
        vhostname: std::ptr::null(),
        tftp_server_name: std::ptr::null(),
        tftp_path: std::ptr::null(),
        bootfile: std::ptr::null(),
        vdhcp_start: ipv4(DHCP_START),
        vnameserver: ipv4(NAMESERVER),
        vnameserver6: no_in6,
        vdnssearch: std::ptr::null(),
        vdomainname: std::ptr::null(),
        if_mtu: mtu as usize,
        if_mru: mtu as usize,
        disable_host_loopback: false,
        enable_emu: false,
        outbound_addr: std::ptr::null(),
        outbound_addr6: std::ptr::null(),
        disable_dns: false,
        disable_dhcp: true,
    }
}

/// What the callbacks share with the loop (libslirp's `opaque`). Only ever shared: what
/// changes is in cells, borrowed briefly and never across a call into libslirp.
struct State {
    tap: RawFd,
    /// The poll set of this turn: the tap, `exit`, then libslirp's descriptors.
    pollfds: RefCell<Vec<libc::pollfd>>,
    timers: RefCell<Vec<Timer>>,
    /// The handle of the next timer made (never 0: libslirp takes NULL for failure).
    next_handle: Cell<usize>,
    /// A write to the tap failed for good.
    fatal: Cell<Option<io::Error>>,
}

struct Timer {
    handle: usize,
    fire: Fire,
    /// When it fires, in milliseconds of libslirp's clock; None: not armed.
    expire_ms: Option<i64>,
}

/// How a timer fires: through slirp_handle_timer (timer_new_opaque) or its own callback.
#[derive(Clone, Copy)]
enum Fire {
    Opaque {
        id: c_int,
        cb_opaque: *mut c_void,
    },
    Callback {
        cb: SlirpTimerCb,
        cb_opaque: *mut c_void,
    },
}

impl State {
    fn new(tap: RawFd) -> State {
        State {
            tap,
            pollfds: RefCell::new(Vec::with_capacity(64)),
            timers: RefCell::new(Vec::new()),
            next_handle: Cell::new(1),
            fatal: Cell::new(None),
        }
    }

    fn new_timer(&self, fire: Fire) -> *mut c_void {
        let Ok(mut timers) = self.timers.try_borrow_mut() else {
            return std::ptr::null_mut();
        };
        let handle = self.next_handle.get();
        self.next_handle.set(handle.wrapping_add(1).max(1));
        timers.push(Timer {
            handle,
            fire,
            expire_ms: None,
        });
        std::ptr::without_provenance_mut(handle)
    }

    fn with_timer(&self, timer: *mut c_void, f: impl FnOnce(&mut Vec<Timer>, usize)) {
        let Ok(mut timers) = self.timers.try_borrow_mut() else {
            return;
        };
        if let Some(i) = timers.iter().position(|t| t.handle == timer.addr()) {
            f(&mut timers, i);
        }
    }

    /// Milliseconds until the earliest armed timer, if any.
    fn next_timer(&self, now_ms: i64) -> Option<i64> {
        let timers = self.timers.try_borrow().ok()?;
        timers
            .iter()
            .filter_map(|t| t.expire_ms)
            .min()
            .map(|at| (at - now_ms).max(0))
    }

    /// Disarms the timers due at `now_ms` and appends how to fire them to `due`.
    fn take_due(&self, now_ms: i64, due: &mut Vec<Fire>) {
        let Ok(mut timers) = self.timers.try_borrow_mut() else {
            return;
        };
        for t in timers.iter_mut() {
            if t.expire_ms.is_some_and(|at| at <= now_ms) {
                t.expire_ms = None;
                due.push(t.fire);
            }
        }
    }
}

/// Runs a callback body, turning a panic into `fallback` (no unwinding into C).
fn guard<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

/// The State behind libslirp's `opaque`.
///
/// # Safety
/// `opaque` must be the State pointer given to slirp_new (live for the whole instance).
unsafe fn state<'a>(opaque: *mut c_void) -> &'a State {
    // SAFETY: per the contract, opaque points to a live State, only ever shared.
    unsafe { &*opaque.cast_const().cast::<State>() }
}

extern "C" fn send_packet(buf: *const c_void, len: usize, opaque: *mut c_void) -> isize {
    guard(len as isize, || {
        // SAFETY: libslirp passes back the opaque given to slirp_new.
        let state = unsafe { state(opaque) };
        loop {
            // SAFETY: buf holds len bytes (one frame) for the duration of the call.
            let n = unsafe { libc::write(state.tap, buf, len) };
            if n >= 0 {
                return n;
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                // The tap is gone: end the loop. Anything else (link down, queue full) drops
                // the frame, as a full link would; TCP retransmits.
                Some(libc::EBADF | libc::EBADFD | libc::ENODEV | libc::ENXIO) => {
                    state.fatal.set(Some(e));
                }
                _ => {}
            }
            // Reported as sent: libslirp only complains about failures on stderr.
            return len as isize;
        }
    })
}

extern "C" fn guest_error(msg: *const c_char, _opaque: *mut c_void) {
    guard((), || {
        if !msg.is_null() {
            // SAFETY: libslirp passes a NUL-terminated message, valid during the call.
            let msg = unsafe { CStr::from_ptr(msg) };
            tracing::warn!(said = %msg.to_string_lossy(), "libslirp: guest error");
        }
    })
}

extern "C" fn clock_get_ns(_opaque: *mut c_void) -> i64 {
    now_ns()
}

extern "C" fn timer_new(
    cb: Option<SlirpTimerCb>,
    cb_opaque: *mut c_void,
    opaque: *mut c_void,
) -> *mut c_void {
    guard(std::ptr::null_mut(), || {
        let Some(cb) = cb else {
            return std::ptr::null_mut();
        };
        // SAFETY: libslirp passes back the opaque given to slirp_new.
        unsafe { state(opaque) }.new_timer(Fire::Callback { cb, cb_opaque })
    })
}

extern "C" fn timer_new_opaque(
    id: c_int,
    cb_opaque: *mut c_void,
    opaque: *mut c_void,
) -> *mut c_void {
    guard(std::ptr::null_mut(), || {
        // SAFETY: libslirp passes back the opaque given to slirp_new.
        unsafe { state(opaque) }.new_timer(Fire::Opaque { id, cb_opaque })
    })
}

extern "C" fn timer_free(timer: *mut c_void, opaque: *mut c_void) {
    guard((), || {
        // SAFETY: libslirp passes back the opaque given to slirp_new.
        unsafe { state(opaque) }.with_timer(timer, |timers, i| {
            timers.swap_remove(i);
        });
    })
}

extern "C" fn timer_mod(timer: *mut c_void, expire_ms: i64, opaque: *mut c_void) {
    guard((), || {
        // SAFETY: libslirp passes back the opaque given to slirp_new.
        unsafe { state(opaque) }.with_timer(timer, |timers, i| {
            timers[i].expire_ms = Some(expire_ms);
        });
    })
}

/// libslirp's descriptors are polled through slirp_pollfds_fill each turn: nothing to keep.
extern "C" fn register_poll_fd(_fd: c_int, _opaque: *mut c_void) {}

extern "C" fn unregister_poll_fd(_fd: c_int, _opaque: *mut c_void) {}

/// Only guest forwards wait for it; the loop asks libslirp again every turn anyway.
extern "C" fn notify(_opaque: *mut c_void) {}

extern "C" fn add_poll(fd: c_int, events: c_int, opaque: *mut c_void) -> c_int {
    guard(-1, || {
        // SAFETY: the loop passes its State as slirp_pollfds_fill's opaque.
        let state = unsafe { state(opaque) };
        let Ok(mut fds) = state.pollfds.try_borrow_mut() else {
            return -1;
        };
        fds.push(pollfd(fd, to_poll_events(events)));
        c_int::try_from(fds.len() - 1).unwrap_or(-1)
    })
}

extern "C" fn get_revents(idx: c_int, opaque: *mut c_void) -> c_int {
    guard(0, || {
        // SAFETY: the loop passes its State as slirp_pollfds_poll's opaque.
        let state = unsafe { state(opaque) };
        let Ok(fds) = state.pollfds.try_borrow() else {
            return 0;
        };
        usize::try_from(idx)
            .ok()
            .and_then(|i| fds.get(i))
            .map_or(0, |p| from_poll_events(p.revents))
    })
}

const SLIRP_POLL_IN: c_int = 1 << 0;
const SLIRP_POLL_OUT: c_int = 1 << 1;
const SLIRP_POLL_PRI: c_int = 1 << 2;
const SLIRP_POLL_ERR: c_int = 1 << 3;
const SLIRP_POLL_HUP: c_int = 1 << 4;

/// Pairs of libslirp's SLIRP_POLL_* flags and poll(2)'s.
const POLL_FLAGS: [(c_int, libc::c_short); 5] = [
    (SLIRP_POLL_IN, libc::POLLIN),
    (SLIRP_POLL_OUT, libc::POLLOUT),
    (SLIRP_POLL_PRI, libc::POLLPRI),
    (SLIRP_POLL_ERR, libc::POLLERR),
    (SLIRP_POLL_HUP, libc::POLLHUP),
];

fn to_poll_events(slirp: c_int) -> libc::c_short {
    POLL_FLAGS
        .iter()
        .filter(|(s, _)| slirp & s != 0)
        .fold(0, |acc, (_, p)| acc | p)
}

fn from_poll_events(poll: libc::c_short) -> c_int {
    let nval = if poll & libc::POLLNVAL != 0 {
        SLIRP_POLL_ERR
    } else {
        0
    };
    POLL_FLAGS
        .iter()
        .filter(|(_, p)| poll & p != 0)
        .fold(nval, |acc, (s, _)| acc | s)
}

// ---- FFI declarations, after libslirp.h (4.7.0) ----

/// Opaque struct Slirp.
#[repr(C)]
struct Slirp {
    _private: [u8; 0],
}

type SlirpTimerCb = unsafe extern "C" fn(*mut c_void);
type AddPollCb = unsafe extern "C" fn(c_int, c_int, *mut c_void) -> c_int;
type GetREventsCb = unsafe extern "C" fn(c_int, *mut c_void) -> c_int;

/// struct SlirpCb (fields up to those of SlirpConfig version 4).
#[repr(C)]
struct SlirpCb {
    send_packet: Option<unsafe extern "C" fn(*const c_void, usize, *mut c_void) -> isize>,
    guest_error: Option<unsafe extern "C" fn(*const c_char, *mut c_void)>,
    clock_get_ns: Option<unsafe extern "C" fn(*mut c_void) -> i64>,
    timer_new:
        Option<unsafe extern "C" fn(Option<SlirpTimerCb>, *mut c_void, *mut c_void) -> *mut c_void>,
    timer_free: Option<unsafe extern "C" fn(*mut c_void, *mut c_void)>,
    timer_mod: Option<unsafe extern "C" fn(*mut c_void, i64, *mut c_void)>,
    register_poll_fd: Option<unsafe extern "C" fn(c_int, *mut c_void)>,
    unregister_poll_fd: Option<unsafe extern "C" fn(c_int, *mut c_void)>,
    notify: Option<unsafe extern "C" fn(*mut c_void)>,
    /// Version 4 on.
    init_completed: Option<unsafe extern "C" fn(*mut Slirp, *mut c_void)>,
    /// Version 4 on; the id is enum SlirpTimerId.
    timer_new_opaque: Option<unsafe extern "C" fn(c_int, *mut c_void, *mut c_void) -> *mut c_void>,
}

/// The callbacks for libslirp before 4.7: timers carry their own callback.
static CALLBACKS: SlirpCb = SlirpCb {
    send_packet: Some(send_packet),
    guest_error: Some(guest_error),
    clock_get_ns: Some(clock_get_ns),
    timer_new: Some(timer_new),
    timer_free: Some(timer_free),
    timer_mod: Some(timer_mod),
    register_poll_fd: Some(register_poll_fd),
    unregister_poll_fd: Some(unregister_poll_fd),
    notify: Some(notify),
    init_completed: None,
    timer_new_opaque: None,
};

/// The callbacks from libslirp 4.7 on: timers fire through slirp_handle_timer.
static CALLBACKS_OPAQUE_TIMERS: SlirpCb = SlirpCb {
    timer_new_opaque: Some(timer_new_opaque),
    ..CALLBACKS
};

/// struct SlirpConfig, version 4.
#[repr(C)]
struct SlirpConfig {
    version: u32,
    restricted: c_int,
    in_enabled: bool,
    vnetwork: libc::in_addr,
    vnetmask: libc::in_addr,
    vhost: libc::in_addr,
    in6_enabled: bool,
    vprefix_addr6: libc::in6_addr,
    vprefix_len: u8,
    vhost6: libc::in6_addr,
    vhostname: *const c_char,
    tftp_server_name: *const c_char,
    tftp_path: *const c_char,
    bootfile: *const c_char,
    vdhcp_start: libc::in_addr,
    vnameserver: libc::in_addr,
    vnameserver6: libc::in6_addr,
    vdnssearch: *const *const c_char,
    vdomainname: *const c_char,
    if_mtu: usize,
    if_mru: usize,
    disable_host_loopback: bool,
    enable_emu: bool,
    /// Version 2 on.
    outbound_addr: *const libc::sockaddr_in,
    outbound_addr6: *const libc::sockaddr_in6,
    /// Version 3 on.
    disable_dns: bool,
    /// Version 4 on.
    disable_dhcp: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::mem::{offset_of, size_of};
    use std::os::fd::AsFd;

    #[test]
    fn missing_library_says_what_to_install() {
        let e = Library::load_from("libslirp-absent.so.0").unwrap_err();
        assert!(matches!(e, SlirpError::Load(_)));
        assert!(
            e.to_string().contains("install the libslirp0 package"),
            "{e}"
        );
    }

    #[test]
    fn bad_input_is_refused_before_anything_runs() {
        // libslirp0 is what `burrow __egress` runs by default: the test needs it installed.
        let lib = Library::load().unwrap_or_else(|e| panic!("{e}"));
        let (exit_r, _exit_w) = std::io::pipe().unwrap();
        let tap = File::open("/dev/null").unwrap().into();
        let mut ran = false;
        let e = run(&lib, tap, exit_r.as_fd(), 70000, || ran = true).unwrap_err();
        assert!(matches!(e, SlirpError::Mtu(70000)), "{e}");
        assert!(!ran);
        assert!(open_tap("", MTU).is_err());
        assert!(open_tap("a-name-far-too-long", MTU).is_err());
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("4.7.0"), Some((4, 7)));
        assert_eq!(parse_version("4.10.1-dirty"), Some((4, 10)));
        assert_eq!(parse_version("4"), None);
        assert_eq!(parse_version("x.y"), None);
    }

    #[test]
    fn poll_flags_round_trip() {
        let all = SLIRP_POLL_IN | SLIRP_POLL_OUT | SLIRP_POLL_PRI | SLIRP_POLL_ERR | SLIRP_POLL_HUP;
        assert_eq!(from_poll_events(to_poll_events(all)), all);
        assert_eq!(to_poll_events(SLIRP_POLL_OUT), libc::POLLOUT);
        assert_eq!(from_poll_events(libc::POLLNVAL), SLIRP_POLL_ERR);
    }

    #[test]
    fn timeouts() {
        assert_eq!(poll_timeout(u32::MAX, None), -1);
        assert_eq!(poll_timeout(1000, None), 1000);
        assert_eq!(poll_timeout(u32::MAX, Some(7)), 7);
        assert_eq!(poll_timeout(2, Some(7)), 2);
        assert_eq!(poll_timeout(u32::MAX - 1, None), c_int::MAX);
    }

    #[test]
    fn timers() {
        let state = State::new(-1);
        let a = state.new_timer(Fire::Opaque {
            id: 0,
            cb_opaque: std::ptr::null_mut(),
        });
        let b = state.new_timer(Fire::Opaque {
            id: 1,
            cb_opaque: std::ptr::null_mut(),
        });
        assert!(!a.is_null() && a != b);
        assert_eq!(state.next_timer(100), None);
        let opaque = (&raw const state).cast_mut().cast();
        timer_mod(a, 150, opaque);
        timer_mod(b, 120, opaque);
        assert_eq!(state.next_timer(100), Some(20));
        let mut due = Vec::new();
        state.take_due(130, &mut due);
        assert!(matches!(due[..], [Fire::Opaque { id: 1, .. }]));
        assert_eq!(state.next_timer(130), Some(20));
        timer_free(a, opaque);
        assert_eq!(state.next_timer(130), None);
    }

    /// Field offsets and sizes of SlirpConfig and SlirpCb, as gcc sees them in libslirp.h.
    #[test]
    fn layout_matches_header() {
        let header = std::path::Path::new("/usr/include/slirp/libslirp.h");
        assert!(
            header.exists(),
            "{} is absent: this test needs it (apt-get install libslirp-dev)",
            header.display()
        );
        /// The size of a field, from a projection (offset_of! has no size counterpart).
        fn field_size<T, F>(_: fn(&T) -> &F) -> usize {
            size_of::<F>()
        }
        // Entries: ("sizeof T", n), ("offsetof T f", n), ("sizeof T f", n).
        macro_rules! fields {
            ($ty:ident: $($f:ident),*) => {
                vec![
                    (format!("sizeof {}", stringify!($ty)), size_of::<$ty>()),
                    $(
                        (format!("offsetof {} {}", stringify!($ty), stringify!($f)),
                            offset_of!($ty, $f)),
                        (format!("sizeof {} {}", stringify!($ty), stringify!($f)),
                            field_size(|s: &$ty| &s.$f)),
                    )*
                ]
            };
        }
        let mut rust = fields!(SlirpConfig: version, restricted, in_enabled, vnetwork,
            vnetmask, vhost, in6_enabled, vprefix_addr6, vprefix_len, vhost6, vhostname,
            tftp_server_name, tftp_path, bootfile, vdhcp_start, vnameserver, vnameserver6,
            vdnssearch, vdomainname, if_mtu, if_mru, disable_host_loopback, enable_emu,
            outbound_addr, outbound_addr6, disable_dns, disable_dhcp);
        rust.extend(
            fields!(SlirpCb: send_packet, guest_error, clock_get_ns, timer_new,
            timer_free, timer_mod, register_poll_fd, unregister_poll_fd, notify,
            init_completed, timer_new_opaque),
        );
        rust.push(("sizeof SlirpTimerId".into(), size_of::<c_int>()));
        let mut c = String::from(
            "#include <stdio.h>\n#include <stddef.h>\n#include <slirp/libslirp.h>\nint main(void) {\n",
        );
        for (name, _) in &rust {
            let expr = match name.split(' ').collect::<Vec<_>>()[..] {
                ["sizeof", ty] => format!("sizeof({ty})"),
                ["sizeof", ty, f] => format!("sizeof((({ty} *)0)->{f})"),
                ["offsetof", ty, f] => format!("offsetof({ty}, {f})"),
                _ => unreachable!("{name}"),
            };
            c.push_str(&format!("    printf(\"{name} %zu\\n\", (size_t){expr});\n"));
        }
        c.push_str("    return 0;\n}\n");
        let dir = std::env::temp_dir().join(format!("slirp-layout-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (src, exe) = (dir.join("layout.c"), dir.join("layout"));
        std::fs::write(&src, c).unwrap();
        let gcc = std::process::Command::new("gcc")
            .arg(&src)
            .arg("-o")
            .arg(&exe)
            .status();
        match gcc {
            Ok(s) if s.success() => {}
            Ok(s) => panic!("gcc failed on the layout probe: {s}"),
            Err(e) => panic!("cannot run gcc, which this test needs: {e}"),
        }
        let out = std::process::Command::new(&exe).output().unwrap();
        std::fs::remove_dir_all(&dir).ok();
        let out = String::from_utf8(out.stdout).unwrap();
        let from_c: Vec<(String, usize)> = out
            .lines()
            .map(|l| {
                let (name, n) = l.rsplit_once(' ').unwrap();
                (name.to_owned(), n.parse().unwrap())
            })
            .collect();
        assert_eq!(rust, from_c);
        eprintln!(
            "layout matches libslirp.h: {} sizes and offsets",
            rust.len()
        );
    }
}
