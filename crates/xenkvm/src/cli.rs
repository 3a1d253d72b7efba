//! The command line: QEMU's Xen-on-KVM options, parsed with clap and turned into
//! a [`VmConfig`].
//!
//! QEMU spells long options with one dash (`-accel`, `-smp`) and accepts two.
//! [`normalize_args`] rewrites `-word` to `--word` before clap sees it, leaving
//! the short options `-m` and `-M` and option values alone.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, CommandFactory, FromArgMatches, Parser};
use xenkvm_vmm::{ConfigError, KernelSource, VmConfig};

use crate::error::CliError;
use crate::options;

/// The embedded test guest.
/// The built-in test guest, booted when no `-kernel` is given.
pub const EMBEDDED_IMAGE: &[u8] = xenkvm_test_guest::IMAGE;

/// The options xenkvm understands. Help texts show the QEMU spelling.
#[derive(Debug, Parser)]
#[command(
    name = "xenkvm",
    version,
    about = "Run unmodified Xen guests on Linux/KVM, with QEMU's Xen-on-KVM command line.",
    long_about = "Run unmodified Xen guests on Linux/KVM, with QEMU's Xen-on-KVM command line.\n\n\
        Options take QEMU's single-dash spelling (-accel) as well as the double-dash one (--accel).\n\
        With no -kernel, xenkvm boots its built-in test guest.",
    args_override_self = true,
    allow_hyphen_values = true
)]
pub struct Cli {
    /// Accelerator and emulated Xen version: -accel kvm,xen-version=0x40011,kernel-irqchip=split
    #[arg(long, value_name = "kvm,xen-version=N,...")]
    accel: Option<String>,
    /// Machine type (only pc): -machine pc,accel=kvm,kernel-irqchip=split or -M pc
    #[arg(short = 'M', long, value_name = "pc,...")]
    machine: Option<String>,
    /// CPU model and Xen CPU flags: -cpu host,+xen-vapic
    #[arg(long, value_name = "host,...")]
    cpu: Option<String>,
    /// Guest RAM, in MiB unless suffixed K/M/G/T: -m 512, -m 1G or -m size=512M
    #[arg(short = 'm', long = "m", value_name = "SIZE")]
    memory: Option<String>,
    /// Number of vCPUs: -smp 4 or -smp cpus=4,maxcpus=4,sockets=1,cores=4,threads=1
    #[arg(long, value_name = "N,...")]
    smp: Option<String>,
    /// PVH ELF or bzImage to boot instead of the built-in test guest: -kernel FILE
    #[arg(long, value_name = "FILE")]
    kernel: Option<PathBuf>,
    /// Initial ramdisk for the -kernel: -initrd FILE
    #[arg(long, value_name = "FILE")]
    initrd: Option<PathBuf>,
    /// Kernel command line (also read by the test guest): -append "console=ttyS0"
    #[arg(long, value_name = "STRING")]
    append: Option<String>,
    /// Where the 16550 serial port goes: -serial stdio, mon:stdio, none or chardev:ID
    #[arg(long, value_name = "stdio|none|chardev:ID")]
    serial: Option<String>,
    /// A character device: -chardev stdio|socket|file|pty,id=ID[,mux=on][,signal=off]
    /// [,path=P,server=on,wait=off] (use it with -serial chardev:ID or -device xen-console,chardev=ID)
    #[arg(long, value_name = "BACKEND,id=ID,...", action = ArgAction::Append)]
    chardev: Vec<String>,
    /// A monitor: -mon chardev=ID,mode=control makes a socket chardev a QMP
    /// control socket; mode=readline is accepted on a mux=on chardev shared with
    /// the serial port or a console (the -serial mon:stdio equivalent)
    #[arg(long, value_name = "[chardev=]ID[,mode=control]", action = ArgAction::Append)]
    mon: Vec<String>,
    /// A QMP control socket: -qmp unix:PATH,server=on,wait=off
    #[arg(long, value_name = "unix:PATH,server=on[,wait=off]", action = ArgAction::Append)]
    qmp: Vec<String>,
    /// The guest's domain id (default 1): -xen-domid N
    #[arg(long, value_name = "N")]
    xen_domid: Option<String>,
    /// Keep xenkvm (and QMP) running after the guest powers off, until a QMP
    /// quit or system_reset: -no-shutdown
    #[arg(long)]
    no_shutdown: bool,
    /// No graphical output; the serial port stays on stdio: -nographic
    #[arg(long)]
    nographic: bool,
    /// Display back end (only none): -display none
    #[arg(long, value_name = "none")]
    display: Option<String>,
    /// VNC server (only none): -vnc none
    #[arg(long, value_name = "none")]
    vnc: Option<String>,
    /// Exit instead of restarting when the guest reboots: -no-reboot
    #[arg(long)]
    no_reboot: bool,
    /// Accepted for QEMU compatibility (xenkvm creates no default devices): -nodefaults
    #[arg(long)]
    nodefaults: bool,
    /// Accepted for QEMU compatibility (xenkvm reads no config file): -no-user-config
    #[arg(long)]
    no_user_config: bool,
    /// Guest name, in the store and QMP: -name NAME or -name guest=NAME[,...]
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// xenkvm extension, not QEMU: stop the VM after this many seconds: --timeout 30
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<String>,
    /// xenkvm extension: unix socket for Xen's xenstore tools (XENSTORED_PATH);
    /// default $XDG_RUNTIME_DIR/xenkvm-PID.xenstored: --xenstore-socket PATH
    #[arg(long, value_name = "PATH")]
    xenstore_socket: Option<std::path::PathBuf>,
    /// xenkvm extension: the threads' syscall filters; `log` lets a forbidden
    /// syscall through and logs it to the kernel log: --seccomp on|off|log
    #[arg(long, value_name = "on|off|log")]
    seccomp: Option<String>,
    /// A disk image: -drive file=F,if=xen[,format=raw|qcow2][,readonly=on] or
    /// -drive file=F,if=none,id=ID for -device
    #[arg(long, value_name = "file=F,if=xen|none,...", action = ArgAction::Append)]
    drive: Vec<String>,
    /// A PV disk made of an if=none drive: -device xen-disk,drive=ID[,vdev=xvdN]
    /// (also xen-block, and xen-cdrom for a read-only CD-ROM)
    #[arg(long, value_name = "xen-disk,drive=ID,...", action = ArgAction::Append)]
    device: Vec<String>,
    /// A tap for a NIC: -netdev tap,id=ID,ifname=NAME,script=no,downscript=no
    /// (with -device xen-net-device|virtio-net-pci,netdev=ID[,mac=52:54:00:...])
    #[arg(long, value_name = "tap,id=ID,ifname=NAME,...", action = ArgAction::Append)]
    netdev: Vec<String>,
    /// A NIC on a tap: -nic tap,ifname=NAME[,mac=...][,model=xen-net-device|virtio-net-pci] or -nic none
    #[arg(long, value_name = "tap,ifname=NAME,...", action = ArgAction::Append)]
    nic: Vec<String>,
    /// Legacy NIC options, paired in order: -net nic[,macaddr=...] -net tap,ifname=NAME
    #[arg(long, value_name = "nic|tap,...", action = ArgAction::Append)]
    net: Vec<String>,
}

/// A QEMU option xenkvm recognises but rejects: its name and whether it takes a value.
struct Unsupported {
    name: &'static str,
    takes_value: bool,
}

const fn unsupported(name: &'static str, takes_value: bool) -> Unsupported {
    Unsupported { name, takes_value }
}

const UNSUPPORTED: [Unsupported; 3] = [
    unsupported("monitor", true),
    unsupported("bios", true),
    unsupported("xen-attach", false),
];

/// The clap command: [`Cli`] plus hidden arguments for the unsupported QEMU options.
pub fn command() -> clap::Command {
    let names: Vec<String> = UNSUPPORTED.iter().map(|u| format!("-{}", u.name)).collect();
    let note = format!("Recognised but not supported yet: {}.", names.join(" "));
    let cmd = Cli::command().after_help(note);
    UNSUPPORTED.iter().fold(cmd, |cmd, u| {
        let action = if u.takes_value {
            ArgAction::Append
        } else {
            ArgAction::SetTrue
        };
        cmd.arg(Arg::new(u.name).long(u.name).hide(true).action(action))
    })
}

/// Parses a whole argv (program name first) into a validated [`VmConfig`].
pub fn parse<I, T>(args: I) -> Result<VmConfig, CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    if args.len() <= 1 {
        return Ok(VmConfig::embedded(EMBEDDED_IMAGE));
    }
    let mut cmd = command();
    cmd.build();
    let argv = normalize_args(args, &ValueOptions::of(&cmd));
    let matches = cmd.try_get_matches_from_mut(argv)?;
    reject_unsupported(&matches)?;
    Cli::from_arg_matches(&matches)?.into_config()
}

/// Which option spellings consume the next argument as their value.
#[derive(Debug, Default)]
pub struct ValueOptions {
    longs: Vec<String>,
    shorts: Vec<char>,
}

impl ValueOptions {
    /// Collects the value-taking options of a built command.
    pub fn of(cmd: &clap::Command) -> Self {
        let mut options = Self::default();
        for arg in cmd
            .get_arguments()
            .filter(|arg| arg.get_action().takes_values())
        {
            options.longs.extend(arg.get_long().map(str::to_owned));
            options.shorts.extend(arg.get_short());
        }
        options
    }

    /// Whether `option` (`--word`, `-c`, without `=value`) is followed by a value.
    fn takes_value(&self, option: &str) -> bool {
        if let Some(long) = option.strip_prefix("--") {
            return self.longs.iter().any(|name| name == long);
        }
        let mut chars = option.chars();
        match (chars.next(), chars.next(), chars.next()) {
            (Some('-'), Some(short), None) => self.shorts.contains(&short),
            _ => false,
        }
    }
}

/// Rewrites QEMU's `-word` options to `--word`. Values of value-taking options,
/// negative numbers, short options and everything after `--` pass unchanged.
pub fn normalize_args(args: Vec<OsString>, options: &ValueOptions) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len());
    let mut iter = args.into_iter();
    out.extend(iter.next());
    while let Some(arg) = iter.next() {
        let Some(text) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        if text == "--" {
            out.push(arg);
            out.extend(iter.by_ref());
            break;
        }
        let option = long_form(text);
        let name = option
            .split_once('=')
            .map_or(option.as_str(), |(name, _)| name);
        let value_follows = !option.contains('=') && options.takes_value(name);
        out.push(OsString::from(option));
        if value_follows {
            out.extend(iter.next());
        }
    }
    out
}

/// `-word` becomes `--word`; anything else is returned as is.
fn long_form(arg: &str) -> String {
    let Some(rest) = arg.strip_prefix('-') else {
        return arg.to_owned();
    };
    let is_number = rest.starts_with(|c: char| c.is_ascii_digit() || c == '.');
    if rest.starts_with('-') || rest.chars().count() < 2 || is_number {
        arg.to_owned()
    } else {
        format!("--{rest}")
    }
}

/// Fails on the first (leftmost) unsupported QEMU option given.
fn reject_unsupported(matches: &ArgMatches) -> Result<(), CliError> {
    let given = |u: &&Unsupported| matches.value_source(u.name) == Some(ValueSource::CommandLine);
    let first = UNSUPPORTED
        .iter()
        .filter(given)
        .min_by_key(|u| matches.index_of(u.name).unwrap_or(usize::MAX));
    match first {
        None => Ok(()),
        Some(u) if u.name == "xen-attach" => Err(CliError::XenAttach),
        Some(u) => Err(CliError::Unsupported(format!("-{}", u.name))),
    }
}

impl Cli {
    /// Builds and validates the VM configuration.
    pub fn into_config(self) -> Result<VmConfig, CliError> {
        let mut cfg = VmConfig::embedded(EMBEDDED_IMAGE);
        if let Some(machine) = &self.machine {
            options::check_machine(machine)?;
        }
        if let Some(accel) = &self.accel {
            cfg.accel = options::parse_accel(accel)?;
        }
        if let Some(cpu) = &self.cpu {
            cfg.cpu = options::parse_cpu(cpu)?;
        }
        if let Some(memory) = &self.memory {
            cfg.memory_bytes = options::parse_memory(memory)?;
        }
        if let Some(smp) = &self.smp {
            cfg.vcpus = options::parse_smp(smp)?;
        }
        self.apply_boot(&mut cfg)?;
        self.apply_frontends()?;
        if let Some(timeout) = &self.timeout {
            cfg.timeout = Some(options::parse_timeout(timeout)?);
        }
        cfg.xenstore_socket = self.xenstore_socket.clone();
        if let Some(mode) = &self.seccomp {
            cfg.seccomp = options::parse_seccomp(mode)?;
        }
        let (console_devices, devices) = crate::chardev::split_devices(&self.device);
        let chardevs = crate::chardev::parse_all(&self.chardev, self.serial.as_deref(), &console_devices, &self.mon)?;
        if let Some(serial) = chardevs.serial {
            cfg.serial = serial;
        }
        cfg.chardevs = chardevs.chardevs;
        cfg.consoles = chardevs.consoles;
        cfg.qmp = chardevs.qmp;
        for value in &self.qmp {
            cfg.qmp.push(crate::chardev::parse_qmp(value)?);
        }
        cfg.no_shutdown = self.no_shutdown;
        if let Some(d) = &self.xen_domid {
            cfg.domid = d.parse().map_err(|_| CliError::invalid("-xen-domid", d, "a domain id from 1 to 32751"))?;
        }
        cfg.name = self.name.as_deref().map(options::parse_name).transpose()?;
        let (net_devices, disk_devices) = crate::net::split_devices(&devices);
        (cfg.disks, cfg.spare_drives) = crate::drive::parse_disks(&self.drive, &disk_devices)?;
        (cfg.nics, cfg.virtio_nics, cfg.spare_netdevs) = crate::net::parse_nics(&self.netdev, &self.nic, &self.net, &net_devices)?;
        cfg.validate().map_err(|source| CliError::Config {
            option: option_of(&source),
            source,
        })?;
        Ok(cfg)
    }

    /// `-kernel`, `-initrd`, `-append` and `-no-reboot`.
    fn apply_boot(&self, cfg: &mut VmConfig) -> Result<(), CliError> {
        match &self.kernel {
            Some(kernel) => {
                check_readable("-kernel", kernel)?;
                cfg.kernel = KernelSource::File(kernel.clone());
                cfg.no_reboot = self.no_reboot;
            }
            // The embedded guest keeps `no_reboot: true`: a test run must end.
            None if self.initrd.is_some() => return Err(CliError::InitrdWithoutKernel),
            None => {}
        }
        if let Some(initrd) = &self.initrd {
            if initrd.to_string_lossy().contains(',') {
                return Err(CliError::MultipleInitrd(initrd.display().to_string()));
            }
            check_readable("-initrd", initrd)?;
            cfg.initrd = Some(initrd.clone());
        }
        if let Some(append) = &self.append {
            cfg.cmdline.clone_from(append);
        }
        Ok(())
    }

    /// `-display`, `-vnc` and `-nographic`.
    fn apply_frontends(&self) -> Result<(), CliError> {
        check_none("-display", self.display.as_deref())?;
        check_none("-vnc", self.vnc.as_deref())?;
        if self.nographic {
            tracing::debug!("-nographic: serial port on stdio unless -serial says otherwise");
        }
        Ok(())
    }
}

/// Accepts an absent option or the value `none`.
fn check_none(option: &'static str, value: Option<&str>) -> Result<(), CliError> {
    match value {
        None | Some("none") => Ok(()),
        Some(other) => Err(CliError::Display {
            option,
            value: other.to_owned(),
        }),
    }
}

/// Checks that `path` is a regular file we can open for reading.
fn check_readable(option: &'static str, path: &Path) -> Result<(), CliError> {
    let error = |reason: String| CliError::File {
        option,
        path: path.to_owned(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| error(e.to_string()))?;
    let metadata = file.metadata().map_err(|e| error(e.to_string()))?;
    if metadata.is_file() {
        Ok(())
    } else {
        Err(error("not a regular file".to_owned()))
    }
}

/// The option whose value [`VmConfig::validate`] rejected.
fn option_of(error: &ConfigError) -> &'static str {
    // An if-chain, not a match: new ConfigError variants must not break this crate.
    if matches!(error, ConfigError::MemorySize(_)) {
        "-m"
    } else if matches!(error, ConfigError::Domid(_)) {
        "-xen-domid"
    } else if matches!(error, ConfigError::VcpuCount(_)) {
        "-smp"
    } else if matches!(
        error,
        ConfigError::XenVersion(_) | ConfigError::GnttabFrames(_) | ConfigError::MaxPirq(_)
    ) {
        "-accel"
    } else if matches!(
        error,
        ConfigError::Vdev(_) | ConfigError::DuplicateVdev(_) | ConfigError::TooManyDisks
    ) {
        "-drive/-device"
    } else if matches!(
        error,
        ConfigError::TooManyNics | ConfigError::TooManyVirtioNics | ConfigError::DuplicateTap(_) | ConfigError::DuplicateMac(_)
    ) {
        "-netdev/-nic/-net"
    } else if matches!(error, ConfigError::NoSuchChardev(_) | ConfigError::TooManyConsoles) {
        "-chardev/-serial/-device xen-console"
    } else {
        "invalid configuration"
    }
}

#[cfg(test)]
mod tests;
