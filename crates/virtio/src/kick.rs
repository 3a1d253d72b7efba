//! The guest's queue notifications reach the device's worker thread through
//! an eventfd: the vCPU only writes it, so no device work runs on the vCPU.

use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::VirtioError;

/// A wake-up for a worker thread (an eventfd counter, non-blocking).
#[derive(Debug)]
pub struct Kick(EventFd);

impl Kick {
    pub fn new() -> Result<Self, VirtioError> {
        EventFd::new(EFD_NONBLOCK).map(Self).map_err(VirtioError::EventFd)
    }

    /// Wakes the worker (a vCPU's notify write, or the VMM at stop).
    pub fn notify(&self) {
        let _ = self.0.write(1);
    }

    /// Consumes pending wake-ups; whether there were any.
    pub fn take(&self) -> bool {
        self.0.read().is_ok_and(|n| n > 0)
    }

    /// Sleeps until a wake-up or `limit`; whether one came (it is consumed).
    pub fn wait(&self, limit: Duration) -> bool {
        wait_fds(&[self.as_raw_fd()], limit).first().copied().unwrap_or(false) && self.take()
    }

    /// The eventfd, for a backend that polls it beside its own fd.
    pub fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// Polls `fds` for input up to `limit`; which are readable (all false on
/// a timeout or an error).
pub fn wait_fds(fds: &[RawFd], limit: Duration) -> Vec<bool> {
    let mut polls: Vec<libc::pollfd> = fds.iter().map(|&fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 }).collect();
    let ms = libc::c_int::try_from(limit.as_millis()).unwrap_or(libc::c_int::MAX);
    let n = libc::nfds_t::try_from(polls.len()).unwrap_or(0);
    // SAFETY: `polls` is a valid array of `n` pollfds for the duration of
    // the call, which writes only their `revents`.
    let rc = unsafe { libc::poll(polls.as_mut_ptr(), n, ms) };
    polls.iter().map(|p| rc > 0 && p.revents & libc::POLLIN != 0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kick_wakes_a_wait_once() {
        let k = Kick::new().unwrap();
        assert!(!k.wait(Duration::from_millis(1)));
        k.notify();
        k.notify();
        assert!(k.wait(Duration::from_secs(1)));
        assert!(!k.take(), "both kicks consumed");
        assert_eq!(wait_fds(&[-1], Duration::ZERO), vec![false]);
    }
}
