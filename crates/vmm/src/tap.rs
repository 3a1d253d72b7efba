//! A Linux tap interface with virtio-net headers: `/dev/net/tun` opened
//! with `IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`, so every frame carries its
//! checksum and segmentation offload metadata both ways.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use xenkvm_xen_pv::netback::{Gso, GsoKind, NetDevice, Offload, PartialCsum, RxCaps};

const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
/// `_IOW('T', 202, int)`.
const TUNSETIFF: libc::c_ulong = 0x4004_54CA;
/// `_IOW('T', 208, unsigned int)`.
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54D0;
const TUN_F_CSUM: libc::c_uint = 0x01;
const TUN_F_TSO4: libc::c_uint = 0x02;
const TUN_F_TSO6: libc::c_uint = 0x04;
const TUN_F_TSO_ECN: libc::c_uint = 0x08;
/// `_IOW('T', 216, int)`: the vnet header's size.
const TUNSETVNETHDRSZ: libc::c_ulong = 0x4004_54D8;

/// `struct virtio_net_hdr` (the tap's default header, 10 bytes, host order).
pub const VNET_HDR_LEN: usize = 10;
const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = 1;
const VIRTIO_NET_HDR_F_DATA_VALID: u8 = 2;
const VIRTIO_NET_HDR_GSO_NONE: u8 = 0;
const VIRTIO_NET_HDR_GSO_TCPV4: u8 = 1;
const VIRTIO_NET_HDR_GSO_TCPV6: u8 = 4;
const VIRTIO_NET_HDR_GSO_ECN: u8 = 0x80;

/// Largest read: a 64 KiB GSO frame and its header.
pub const MAX_READ: usize = VNET_HDR_LEN + 65_550;

/// `struct ifreq` with the flags member of its union.
#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Why a tap could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum OpenTapError {
    #[error("tap interface name \"{0}\" is empty or longer than 15 bytes")]
    Name(String),
    #[error("cannot open /dev/net/tun")]
    OpenTun(#[source] io::Error),
    #[error("cannot attach to tap {0} (TUNSETIFF; it needs CAP_NET_ADMIN or a persistent tap owned by this user)")]
    SetIff(String, #[source] io::Error),
}

/// An open tap interface.
#[derive(Debug)]
pub struct Tap {
    file: File,
    ifname: String,
}

impl Tap {
    /// Opens (creating if needed) tap `ifname`, non-blocking, with vnet headers.
    pub fn open(ifname: &str) -> Result<Self, OpenTapError> {
        if ifname.is_empty() || ifname.len() >= libc::IFNAMSIZ || ifname.contains('\0') {
            return Err(OpenTapError::Name(ifname.to_owned()));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(OpenTapError::OpenTun)?;
        let mut req = IfReq { name: [0; libc::IFNAMSIZ], flags: IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, _pad: [0; 22] };
        for (dst, src) in req.name.iter_mut().zip(ifname.bytes()) {
            *dst = src as libc::c_char;
        }
        // SAFETY: TUNSETIFF reads and writes a `struct ifreq`; `req` is one
        // (name, flags, padding to the kernel's 40 bytes) and outlives the call.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF, &mut req as *mut IfReq) };
        if rc < 0 {
            return Err(OpenTapError::SetIff(ifname.to_owned(), io::Error::last_os_error()));
        }
        Ok(Self { file, ifname: ifname.to_owned() })
    }

    /// Sets the vnet header to `len` bytes (12 for virtio-net 1.x, whose
    /// header has `num_buffers`; the default is 10).
    pub fn set_vnet_hdr_size(&self, len: usize) -> io::Result<()> {
        let size = libc::c_int::try_from(len).map_err(io::Error::other)?;
        // SAFETY: TUNSETVNETHDRSZ reads one int through the pointer, which
        // points at `size` for the duration of the call.
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), TUNSETVNETHDRSZ, &size as *const libc::c_int) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// A second handle on the same queue (one thread reads, one writes).
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(Self { file: self.file.try_clone()?, ifname: self.ifname.clone() })
    }

    /// Waits up to `limit` for a frame to read; whether one is there.
    pub fn wait_readable(&self, limit: Duration) -> bool {
        let mut fds = libc::pollfd { fd: self.file.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ms = libc::c_int::try_from(limit.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `fds` is one valid pollfd for the duration of the call.
        let rc = unsafe { libc::poll(&mut fds, 1, ms) };
        rc > 0 && fds.revents & libc::POLLIN != 0
    }

    /// Reads one frame into `buf` (at least [`MAX_READ`] bytes): its offload
    /// metadata and its length after the header. `None` when none is waiting.
    pub fn read_frame(&mut self, buf: &mut [u8]) -> io::Result<Option<(Offload, usize)>> {
        let n = match self.file.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(e),
        };
        let (Some(hdr), Some(len)) = (buf.get(..VNET_HDR_LEN), n.checked_sub(VNET_HDR_LEN)) else {
            return Err(io::Error::other("short read from tap"));
        };
        Ok(Some((decode_vnet_hdr(hdr), len)))
    }
}

/// The offloads in a `virtio_net_hdr` (fields in host order).
pub fn decode_vnet_hdr(h: &[u8]) -> Offload {
    let byte = |i: usize| h.get(i).copied().unwrap_or(0);
    let word = |i: usize| u16::from_ne_bytes([byte(i), byte(i + 1)]);
    let flags = byte(0);
    let csum =
        (flags & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0).then(|| PartialCsum { start: word(6), offset: word(8) });
    let kind = match byte(1) & !VIRTIO_NET_HDR_GSO_ECN {
        VIRTIO_NET_HDR_GSO_TCPV4 => Some(GsoKind::Tcpv4),
        VIRTIO_NET_HDR_GSO_TCPV6 => Some(GsoKind::Tcpv6),
        _ => None,
    };
    let gso = kind.map(|kind| Gso { kind, size: word(4), hdr_len: word(2) });
    Offload { csum, data_valid: flags & VIRTIO_NET_HDR_F_DATA_VALID != 0, gso }
}

/// The `virtio_net_hdr` for a frame's offloads.
pub fn encode_vnet_hdr(off: &Offload) -> [u8; VNET_HDR_LEN] {
    let mut h = [0u8; VNET_HDR_LEN];
    let mut put = |at: usize, v: u16| {
        if let Some(d) = h.get_mut(at..at + 2) {
            d.copy_from_slice(&v.to_ne_bytes());
        }
    };
    let mut flags = 0;
    if let Some(c) = off.csum {
        flags |= VIRTIO_NET_HDR_F_NEEDS_CSUM;
        put(6, c.start);
        put(8, c.offset);
    }
    if off.data_valid && off.csum.is_none() {
        flags |= VIRTIO_NET_HDR_F_DATA_VALID;
    }
    let gso_type = match off.gso {
        Some(g) => {
            put(2, g.hdr_len);
            put(4, g.size);
            match g.kind {
                GsoKind::Tcpv4 => VIRTIO_NET_HDR_GSO_TCPV4,
                GsoKind::Tcpv6 => VIRTIO_NET_HDR_GSO_TCPV6,
            }
        }
        None => VIRTIO_NET_HDR_GSO_NONE,
    };
    h[0] = flags;
    h[1] = gso_type;
    h
}

/// The `TUNSETOFFLOAD` flags for what the guest can receive.
pub fn offload_flags(caps: &RxCaps) -> libc::c_uint {
    // The tap hands partial checksums of both families under one flag; the
    // backend completes those the frontend cannot take.
    let mut flags = TUN_F_CSUM;
    if caps.gso_v4 {
        flags |= TUN_F_TSO4;
    }
    if caps.gso_v6 {
        flags |= TUN_F_TSO6;
    }
    flags
}

impl NetDevice for Tap {
    fn send(&mut self, frame: &[u8], offload: &Offload) -> io::Result<()> {
        let hdr = encode_vnet_hdr(offload);
        let want = hdr.len() + frame.len();
        let n = (&self.file).write_vectored(&[IoSlice::new(&hdr), IoSlice::new(frame)])?;
        if n != want {
            return Err(io::Error::other(format!("short write to tap {}: {n} of {want} bytes", self.ifname)));
        }
        Ok(())
    }

    fn set_offloads(&mut self, caps: &RxCaps) -> io::Result<()> {
        let flags = offload_flags(caps);
        // SAFETY: TUNSETOFFLOAD takes its argument by value (an unsigned int).
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), TUNSETOFFLOAD, libc::c_ulong::from(flags)) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// A tap as a virtio-net backend: its vnet header must be 12 bytes
/// ([`Tap::set_vnet_hdr_size`]), the same as the virtio header.
impl xenkvm_virtio::NetBackend for Tap {
    fn write_frame(&mut self, bufs: &[&[u8]]) -> io::Result<()> {
        let slices: Vec<IoSlice<'_>> = bufs.iter().map(|b| IoSlice::new(b)).collect();
        let want: usize = bufs.iter().map(|b| b.len()).sum();
        let n = (&self.file).write_vectored(&slices)?;
        if n != want {
            return Err(io::Error::other(format!("short write to tap {}: {n} of {want} bytes", self.ifname)));
        }
        Ok(())
    }

    fn read_frame(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match self.file.read(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn wait_readable(&self, kick: &xenkvm_virtio::Kick, limit: Duration) -> bool {
        let ready = xenkvm_virtio::wait_fds(&[self.file.as_raw_fd(), kick.as_raw_fd()], limit);
        ready.first().copied().unwrap_or(false)
    }

    fn set_offloads(&mut self, rx: xenkvm_virtio::RxOffloads) -> io::Result<()> {
        let flags = virtio_offload_flags(rx);
        // SAFETY: TUNSETOFFLOAD takes its argument by value (an unsigned int).
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), TUNSETOFFLOAD, libc::c_ulong::from(flags)) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// The `TUNSETOFFLOAD` flags for what a virtio-net driver takes.
pub fn virtio_offload_flags(rx: xenkvm_virtio::RxOffloads) -> libc::c_uint {
    let pick = |on: bool, flag: libc::c_uint| if on { flag } else { 0 };
    pick(rx.csum, TUN_F_CSUM) | pick(rx.tso4, TUN_F_TSO4) | pick(rx.tso6, TUN_F_TSO6) | pick(rx.ecn, TUN_F_TSO_ECN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vnet_header_round_trip() {
        let off = Offload {
            csum: Some(PartialCsum { start: 34, offset: 16 }),
            data_valid: false,
            gso: Some(Gso { kind: GsoKind::Tcpv6, size: 1440, hdr_len: 74 }),
        };
        let h = encode_vnet_hdr(&off);
        assert_eq!(h[0], VIRTIO_NET_HDR_F_NEEDS_CSUM);
        assert_eq!(h[1], VIRTIO_NET_HDR_GSO_TCPV6);
        assert_eq!(decode_vnet_hdr(&h), off);
        let plain = Offload { data_valid: true, ..Offload::default() };
        assert_eq!(encode_vnet_hdr(&plain), [2, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(decode_vnet_hdr(&encode_vnet_hdr(&plain)), plain);
        // ECN is a modifier of the TCP types; UDP fragmentation is not taken.
        let mut ecn = h;
        ecn[1] = VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN;
        assert_eq!(decode_vnet_hdr(&ecn).gso.map(|g| g.kind), Some(GsoKind::Tcpv4));
        ecn[1] = 3;
        assert_eq!(decode_vnet_hdr(&ecn).gso, None);
    }

    #[test]
    fn offloads_follow_the_frontend() {
        assert_eq!(offload_flags(&RxCaps::default()), TUN_F_CSUM);
        let all = RxCaps { sg: true, csum_v4: true, csum_v6: true, gso_v4: true, gso_v6: true };
        assert_eq!(offload_flags(&all), TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6);
    }

    /// A real tap (where this process may create one): the host answers an
    /// ARP request and a TCP SYN written with vnet headers.
    #[test]
    fn host_answers_through_a_real_tap() {
        use std::process::Command;
        use xenkvm_xen_pv::netback::{complete, l4_checksum_ok, setup_partial};
        let name = format!("xkt{}", std::process::id() % 100_000);
        let mut tap = match Tap::open(&name) {
            Ok(t) => t,
            Err(e) => return eprintln!("skipped: {e}"),
        };
        let ip = |args: &[&str]| Command::new("ip").args(args).status().is_ok_and(|s| s.success());
        if !ip(&["addr", "add", "10.213.0.1/24", "dev", &name]) || !ip(&["link", "set", &name, "up"]) {
            return eprintln!("skipped: cannot configure {name}");
        }
        tap.set_offloads(&RxCaps { sg: true, csum_v4: true, csum_v6: true, gso_v4: true, gso_v6: true }).unwrap();
        let me = [0x52, 0x54, 0, 0, 0, 2];
        let mut arp = vec![0xFF; 6];
        arp.extend_from_slice(&me);
        arp.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
        arp.extend_from_slice(&me);
        arp.extend_from_slice(&[10, 213, 0, 2, 0, 0, 0, 0, 0, 0, 10, 213, 0, 1]);
        tap.send(&arp, &Offload::default()).unwrap();
        let mut buf = vec![0u8; MAX_READ];
        let mut wait_for = |tap: &mut Tap, want: &dyn Fn(&[u8]) -> bool| -> Option<(Offload, Vec<u8>)> {
            let end = std::time::Instant::now() + Duration::from_secs(3);
            while std::time::Instant::now() < end {
                if !tap.wait_readable(Duration::from_millis(50)) {
                    continue;
                }
                while let Ok(Some((off, len))) = tap.read_frame(&mut buf) {
                    let f = buf[VNET_HDR_LEN..VNET_HDR_LEN + len].to_vec();
                    if want(&f) {
                        return Some((off, f));
                    }
                }
            }
            None
        };
        let (_, reply) = wait_for(&mut tap, &|f| f.len() >= 42 && f[12..14] == [8, 6] && f[21] == 2).expect("ARP reply");
        let host_mac: [u8; 6] = reply[6..12].try_into().unwrap();
        // A SYN to a listening port, checksum set up partial and completed here.
        let listener = std::net::TcpListener::bind("10.213.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut syn = host_mac.to_vec();
        syn.extend_from_slice(&me);
        syn.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 213, 0, 2, 10, 213, 0, 1]);
        let ip_sum = !xenkvm_xen_pv::netback::fold(xenkvm_xen_pv::netback::sum_words(&syn[14..34], 0));
        syn[24..26].copy_from_slice(&ip_sum.to_be_bytes());
        syn.extend_from_slice(&40000u16.to_be_bytes());
        syn.extend_from_slice(&port.to_be_bytes());
        syn.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xFF, 0xFF, 0, 0, 0, 0]);
        let (_, pc) = setup_partial(&mut syn).unwrap();
        assert!(complete(&mut syn, pc));
        tap.send(&syn, &Offload::default()).unwrap();
        let (off, mut synack) =
            wait_for(&mut tap, &|f| f.len() >= 54 && f[12..14] == [8, 0] && f[23] == 6 && f[47] & 0x12 == 0x12).expect("SYN-ACK");
        if let Some(c) = off.csum {
            assert!(complete(&mut synack, c));
        }
        assert!(l4_checksum_ok(&synack));
        assert_eq!(synack[34..36], port.to_be_bytes());
    }

    #[test]
    fn bad_names_are_refused_before_any_syscall() {
        assert!(matches!(Tap::open(""), Err(OpenTapError::Name(_))));
        assert!(matches!(Tap::open("a-name-that-is-too-long"), Err(OpenTapError::Name(_))));
    }
}
