//! Executing blkif requests against a [`BlockDevice`]: every range checked
//! against the disk, every grant pinned before its page is touched and
//! released after, one bounce buffer per request, and the flush answered only
//! once the device says the data is durable.

use std::collections::HashMap;
use std::io;

use xenkvm_xen_core::gnttab::GrantAccess;

use crate::blkif::{
    Segment, BadRequest, Request, OP_FLUSH_DISKCACHE, OP_READ, OP_WRITE, OP_WRITE_BARRIER, RSP_EOPNOTSUPP,
    RSP_ERROR, RSP_OKAY, SECTOR, SEGMENTS_PER_INDIRECT_PAGE, SEGMENT_SIZE,
};
use crate::grants::{read_frame, write_frame, DomainGrants, Mapped};

/// The storage behind a virtual disk. Offsets and lengths are in bytes and
/// multiples of 512; callers check ranges against [`BlockDevice::size`].
pub trait BlockDevice: Send {
    /// Size in bytes.
    fn size(&self) -> u64;
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()>;
    /// Makes every completed write durable (fdatasync or the format's equivalent).
    fn flush(&mut self) -> io::Result<()>;
    /// Deallocates a range (later reads return zeros).
    /// `ErrorKind::Unsupported` becomes `BLKIF_RSP_EOPNOTSUPP`.
    fn discard(&mut self, offset: u64, len: u64) -> io::Result<()>;
    /// Whether [`BlockDevice::discard`] is worth offering.
    fn can_discard(&self) -> bool;
}

/// Most grants kept pinned for a frontend that offers `feature-persistent`
/// (Linux blkback's `max_persistent_grants`).
pub const MAX_PERSISTENT_GRANTS: usize = 1056;

/// Grants kept pinned (writable) across requests.
#[derive(Debug, Default)]
pub struct PersistentGrants {
    by_ref: HashMap<u32, u64>,
    mapped: Vec<Mapped>,
}

impl PersistentGrants {
    pub fn len(&self) -> usize {
        self.by_ref.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_ref.is_empty()
    }

    /// Unpins all of them.
    pub fn release(&mut self, grants: &DomainGrants) {
        grants.unmap(&self.mapped);
        self.mapped.clear();
        self.by_ref.clear();
    }
}

/// Counters of what the backend did, for tests and statistics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub reads: u64,
    pub writes: u64,
    pub flushes: u64,
    pub discards: u64,
    pub errors: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
}

/// One disk's request executor.
pub struct Executor {
    pub disk: Box<dyn BlockDevice>,
    pub readonly: bool,
    pub grants: DomainGrants,
    /// `Some` when persistent grants were negotiated.
    pub persistent: Option<PersistentGrants>,
    /// A flush failed once: durability of earlier writes can no longer be
    /// promised, so every later flush fails too.
    pub flush_failed: bool,
    pub stats: Stats,
    buf: Vec<u8>,
    bad_logged: u64,
}

/// Why a data transfer failed (all map to `BLKIF_RSP_ERROR`).
#[derive(Debug)]
enum Fail {
    Bad(BadRequest),
    Range,
    ReadOnly,
    Grant(crate::grants::MapGrantError),
    Io(io::Error),
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bad(b) => write!(f, "{b}"),
            Self::Range => write!(f, "sectors beyond the end of the disk"),
            Self::ReadOnly => write!(f, "write to a read-only disk"),
            Self::Grant(e) => write!(f, "{e}"),
            Self::Io(e) => write!(f, "disk I/O: {e}"),
        }
    }
}

impl Executor {
    pub fn new(disk: Box<dyn BlockDevice>, readonly: bool, grants: DomainGrants) -> Self {
        Self { disk, readonly, grants, persistent: None, flush_failed: false, stats: Stats::default(), buf: Vec::new(), bad_logged: 0 }
    }

    /// Disk size in 512-byte sectors.
    pub fn sectors(&self) -> u64 {
        self.disk.size() / SECTOR
    }

    /// Logs the first few failures, then every power of two.
    pub fn note_failure(&mut self, id: u64, what: &dyn std::fmt::Display) {
        self.stats.errors += 1;
        self.bad_logged += 1;
        if self.bad_logged <= 8 || self.bad_logged.is_power_of_two() {
            tracing::warn!("blkif request {id:#x} failed ({} so far): {what}", self.bad_logged);
        }
    }

    /// Runs a decoded request; returns the response status.
    pub fn execute(&mut self, req: &Request) -> i16 {
        let id = req.id();
        let res = match req {
            Request::Direct { op, sector, segments, .. } => match *op {
                OP_READ | OP_WRITE => self.transfer(*op == OP_WRITE, *sector, segments),
                OP_FLUSH_DISKCACHE | OP_WRITE_BARRIER => {
                    // Data first (a FUA write or a barrier carries some), then
                    // the flush: one fdatasync covers both.
                    match self.transfer(true, *sector, segments) {
                        Ok(()) => return self.flush(id),
                        Err(e) => Err(e),
                    }
                }
                _ => return RSP_EOPNOTSUPP,
            },
            Request::Indirect { op, sector, nr_segments, pages, .. } => self
                .indirect_segments(pages, *nr_segments)
                .and_then(|segs| self.transfer(*op == OP_WRITE, *sector, &segs)),
            Request::Discard { sector, nr_sectors, .. } => return self.discard(id, *sector, *nr_sectors),
            Request::Unsupported { .. } => return RSP_EOPNOTSUPP,
        };
        match res {
            Ok(()) => RSP_OKAY,
            Err(e) => {
                self.note_failure(id, &e);
                RSP_ERROR
            }
        }
    }

    fn flush(&mut self, id: u64) -> i16 {
        self.stats.flushes += 1;
        if self.flush_failed {
            self.note_failure(id, &"an earlier flush failed; durability is lost");
            return RSP_ERROR;
        }
        match self.disk.flush() {
            Ok(()) => RSP_OKAY,
            Err(e) => {
                self.flush_failed = true;
                self.note_failure(id, &Fail::Io(e));
                RSP_ERROR
            }
        }
    }

    fn discard(&mut self, id: u64, sector: u64, nr_sectors: u64) -> i16 {
        if !self.disk.can_discard() {
            return RSP_EOPNOTSUPP;
        }
        if self.readonly {
            self.note_failure(id, &Fail::ReadOnly);
            return RSP_ERROR;
        }
        let in_range = sector.checked_add(nr_sectors).is_some_and(|end| end <= self.sectors());
        if !in_range {
            self.note_failure(id, &Fail::Range);
            return RSP_ERROR;
        }
        self.stats.discards += 1;
        if nr_sectors == 0 {
            return RSP_OKAY;
        }
        match self.disk.discard(sector * SECTOR, nr_sectors * SECTOR) {
            Ok(()) => RSP_OKAY,
            Err(e) if e.kind() == io::ErrorKind::Unsupported => RSP_EOPNOTSUPP,
            Err(e) => {
                self.note_failure(id, &Fail::Io(e));
                RSP_ERROR
            }
        }
    }

    /// Reads the segment descriptors of an indirect request from its pages.
    fn indirect_segments(&mut self, pages: &[u32], count: usize) -> Result<Vec<Segment>, Fail> {
        let (gfns, temp) = self.map(pages.iter().map(|&g| (g, GrantAccess::Read)))?;
        let mut segs = Vec::with_capacity(count);
        let mut result = Ok(());
        let mut raw = vec![0u8; SEGMENTS_PER_INDIRECT_PAGE * SEGMENT_SIZE];
        for (i, gfn) in gfns.iter().enumerate() {
            let n = (count - i * SEGMENTS_PER_INDIRECT_PAGE).min(SEGMENTS_PER_INDIRECT_PAGE);
            let Some(chunk) = raw.get_mut(..n * SEGMENT_SIZE) else { break };
            if !read_frame(self.grants.ram(), *gfn, 0, chunk) {
                result = Err(Fail::Bad(BadRequest::IndirectPages));
                break;
            }
            for d in chunk.chunks_exact(SEGMENT_SIZE) {
                match Segment::parse(d) {
                    Ok(s) => segs.push(s),
                    Err(e) => {
                        result = Err(Fail::Bad(e));
                        break;
                    }
                }
            }
            if result.is_err() {
                break;
            }
        }
        self.grants.unmap(&temp);
        result.map(|()| segs)
    }

    /// Frames for `refs`: persistent ones from the cache (adding new ones
    /// while there is room), the others pinned for this request only
    /// (returned second, for [`DomainGrants::unmap`]).
    fn map(&mut self, refs: impl Iterator<Item = (u32, GrantAccess)>) -> Result<(Vec<u64>, Vec<Mapped>), Fail> {
        let refs: Vec<(u32, GrantAccess)> = refs.collect();
        let mut gfns = vec![0u64; refs.len()];
        let mut todo = Vec::new();
        for (i, &(gref, access)) in refs.iter().enumerate() {
            let cached = self.persistent.as_mut().and_then(|p| {
                if let Some(&gfn) = p.by_ref.get(&gref) {
                    return Some(gfn);
                }
                if p.by_ref.len() >= MAX_PERSISTENT_GRANTS {
                    return None;
                }
                // Persistent frontends grant every page writable (blkif.h, note 8).
                let m = self.grants.map(&[(gref, GrantAccess::Write)]).ok()?;
                let m = m.first().copied()?;
                p.by_ref.insert(gref, m.gfn);
                p.mapped.push(m);
                Some(m.gfn)
            });
            match (cached, gfns.get_mut(i)) {
                (Some(gfn), Some(slot)) => *slot = gfn,
                _ => todo.push((i, gref, access)),
            }
        }
        let batch: Vec<(u32, GrantAccess)> = todo.iter().map(|&(_, g, a)| (g, a)).collect();
        let mapped = self.grants.map(&batch).map_err(Fail::Grant)?;
        for (&(i, _, _), m) in todo.iter().zip(&mapped) {
            if let Some(slot) = gfns.get_mut(i) {
                *slot = m.gfn;
            }
        }
        Ok((gfns, mapped))
    }

    /// Moves the data of a read or write between the disk and the segments.
    fn transfer(&mut self, write: bool, sector: u64, segs: &[Segment]) -> Result<(), Fail> {
        if segs.is_empty() {
            return Ok(());
        }
        if write && self.readonly {
            return Err(Fail::ReadOnly);
        }
        let total: u64 = segs.iter().map(Segment::sectors).sum();
        if sector.checked_add(total).is_none_or(|end| end > self.sectors()) {
            return Err(Fail::Range);
        }
        let access = if write { GrantAccess::Read } else { GrantAccess::Write };
        let (gfns, temp) = self.map(segs.iter().map(|s| (s.gref, access)))?;
        let len = (total * SECTOR) as usize;
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(len, 0);
        let res = if write {
            self.gather(segs, &gfns, &mut buf).and_then(|()| self.disk.write_at(sector * SECTOR, &buf).map_err(Fail::Io))
        } else {
            self.disk.read_at(sector * SECTOR, &mut buf).map_err(Fail::Io).and_then(|()| self.scatter(segs, &gfns, &buf))
        };
        self.grants.unmap(&temp);
        self.buf = buf;
        if res.is_ok() {
            if write {
                self.stats.writes += 1;
                self.stats.bytes_written += len as u64;
            } else {
                self.stats.reads += 1;
                self.stats.bytes_read += len as u64;
            }
        }
        res
    }

    fn gather(&self, segs: &[Segment], gfns: &[u64], buf: &mut [u8]) -> Result<(), Fail> {
        let mut pos = 0;
        for (s, gfn) in segs.iter().zip(gfns) {
            let chunk = buf.get_mut(pos..pos + s.len()).ok_or(Fail::Range)?;
            if !read_frame(self.grants.ram(), *gfn, s.offset(), chunk) {
                return Err(Fail::Bad(BadRequest::IndirectPages));
            }
            pos += s.len();
        }
        Ok(())
    }

    fn scatter(&self, segs: &[Segment], gfns: &[u64], buf: &[u8]) -> Result<(), Fail> {
        let mut pos = 0;
        for (s, gfn) in segs.iter().zip(gfns) {
            let chunk = buf.get(pos..pos + s.len()).ok_or(Fail::Range)?;
            if !write_frame(self.grants.ram(), *gfn, s.offset(), chunk) {
                return Err(Fail::Bad(BadRequest::IndirectPages));
            }
            pos += s.len();
        }
        Ok(())
    }
}
