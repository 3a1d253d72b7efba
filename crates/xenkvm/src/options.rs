//! Parsers for QEMU's `key=value,...` option values (QemuOpts syntax).
//!
//! An option value is a comma-separated list; `,,` stands for a literal comma.
//! The first element may omit its key (`-accel kvm` means `accel=kvm`, `-m 512`
//! means `size=512`); a later bare word `key` means `key=on`. Numbers are
//! decimal or `0x` hexadecimal.

use std::time::Duration;

use xenkvm_vmm::{AccelConfig, CpuConfig, HypercallPath, SeccompMode};

use crate::error::CliError;

/// Splits a QemuOpts list on commas (`,,` is a literal comma); drops empty elements.
pub fn split_list(value: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c != ',' {
            current.push(c);
        } else if chars.next_if_eq(&',').is_some() {
            current.push(',');
        } else {
            items.push(std::mem::take(&mut current));
        }
    }
    items.push(current);
    items.retain(|item| !item.is_empty());
    items
}

/// Parses `[value-of-implied,]key=value,...` into `(key, value)` pairs, in order.
pub fn parse_pairs(value: &str, implied: &str) -> Vec<(String, String)> {
    let pair = |(index, item): (usize, String)| match item.split_once('=') {
        Some((key, val)) => (key.to_owned(), val.to_owned()),
        None if index == 0 => (implied.to_owned(), item),
        None => (item, "on".to_owned()),
    };
    split_list(value)
        .into_iter()
        .enumerate()
        .map(pair)
        .collect()
}

/// A decimal or `0x` hexadecimal number.
pub fn parse_u64(text: &str) -> Option<u64> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// Like [`parse_u64`], limited to `u32`.
pub fn parse_u32(text: &str) -> Option<u32> {
    parse_u64(text).and_then(|n| u32::try_from(n).ok())
}

/// A QEMU size: digits with an optional B/K/M/G/T suffix (any case); no suffix means MiB.
pub fn parse_size(text: &str) -> Option<u64> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(split);
    let shift = match suffix.to_ascii_lowercase().as_str() {
        "b" => 0,
        "k" => 10,
        "" | "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// A QEMU boolean: on/off, yes/no, true/false.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "on" | "yes" | "true" => Some(true),
        "off" | "no" | "false" => Some(false),
        _ => None,
    }
}

const ACCEL_KEYS: &str =
    "xen-version, kernel-irqchip, xen-gnttab-max-frames, xen-evtchn-max-pirq, x-xen-hypercalls";

/// `-accel kvm,xen-version=N[,kernel-irqchip=split][,xen-gnttab-max-frames=N][,xen-evtchn-max-pirq=N]`.
pub fn parse_accel(value: &str) -> Result<AccelConfig, CliError> {
    let mut accel = AccelConfig::default();
    let mut name = None;
    let mut xen_version = None;
    for (key, val) in parse_pairs(value, "accel") {
        let number = || parse_u32(&val).ok_or_else(|| bad_number("-accel", &key, &val));
        match key.as_str() {
            "accel" => name = Some(check_kvm(format!("-accel {val}"), &val)?),
            "xen-version" => xen_version = Some(number()?),
            "kernel-irqchip" => check_split(format!("-accel kernel-irqchip={val}"), &val)?,
            "xen-gnttab-max-frames" => accel.gnttab_max_frames = number()?,
            "xen-evtchn-max-pirq" => accel.evtchn_max_pirq = number()?,
            "x-xen-hypercalls" => accel.hypercalls = parse_hypercall_path(&val)?,
            _ => return Err(unknown_key("-accel", key, ACCEL_KEYS)),
        }
    }
    if name.is_none() {
        return Err(CliError::invalid(
            "-accel",
            value,
            "kvm,xen-version=N[,...]",
        ));
    }
    accel.xen_version =
        xen_version.ok_or_else(|| CliError::XenVersionRequired(value.to_owned()))?;
    Ok(accel)
}

/// `x-xen-hypercalls=auto|kernel|userspace` (xenkvm's own, experimental, as QEMU
/// marks such properties with `x-`): which hypercall transport to use.
fn parse_hypercall_path(val: &str) -> Result<HypercallPath, CliError> {
    match val {
        "auto" => Ok(HypercallPath::Auto),
        "kernel" => Ok(HypercallPath::Kernel),
        "userspace" => Ok(HypercallPath::Userspace),
        _ => Err(CliError::invalid("-accel", &format!("x-xen-hypercalls={val}"), "auto, kernel or userspace")),
    }
}

fn bad_number(option: &'static str, key: &str, value: &str) -> CliError {
    CliError::invalid(
        option,
        &format!("{key}={value}"),
        "a decimal or 0x hexadecimal number",
    )
}

fn unknown_key(option: &'static str, key: String, supported: &'static str) -> CliError {
    CliError::UnknownKey {
        option,
        key,
        supported,
    }
}

/// Accepts the `kvm` accelerator; `setting` is how the user wrote it, for the error.
fn check_kvm(setting: String, accel: &str) -> Result<(), CliError> {
    if accel == "kvm" {
        Ok(())
    } else {
        Err(CliError::Accelerator(setting))
    }
}

/// Accepts `kernel-irqchip=split` only.
fn check_split(setting: String, irqchip: &str) -> Result<(), CliError> {
    if irqchip == "split" {
        Ok(())
    } else {
        Err(CliError::IrqChip(setting))
    }
}

/// QEMU x86 machine types that xenkvm may support one day.
const LATER_MACHINES: [&str; 5] = ["q35", "xenpvh", "xenfv", "microvm", "isapc"];

/// `-machine pc[,accel=kvm][,kernel-irqchip=split]`: checks it; nothing to configure.
pub fn check_machine(value: &str) -> Result<(), CliError> {
    for (key, val) in parse_pairs(value, "type") {
        match key.as_str() {
            "type" => check_machine_type(&val)?,
            "accel" => check_kvm(format!("-machine accel={val}"), &val)?,
            "kernel-irqchip" => check_split(format!("-machine kernel-irqchip={val}"), &val)?,
            _ => return Err(unknown_key("-machine", key, "type, accel, kernel-irqchip")),
        }
    }
    Ok(())
}

fn check_machine_type(machine: &str) -> Result<(), CliError> {
    if machine == "pc" || machine.starts_with("pc-i440fx-") {
        Ok(())
    } else if LATER_MACHINES.contains(&machine) || machine.starts_with("pc-q35-") {
        Err(CliError::MachineNotSupported(machine.to_owned()))
    } else {
        Err(CliError::UnknownMachine(machine.to_owned()))
    }
}

/// `-cpu host[,+xen-vapic|,-xen-vapic|,xen-vapic=on|off]` (`max` is treated as `host`).
pub fn parse_cpu(value: &str) -> Result<CpuConfig, CliError> {
    let items = split_list(value);
    let Some((model, flags)) = items.split_first() else {
        return Err(CliError::invalid(
            "-cpu",
            value,
            "a CPU model like host[,+xen-vapic]",
        ));
    };
    if model != "host" && model != "max" {
        return Err(CliError::CpuModel(model.clone()));
    }
    let mut cpu = CpuConfig::default();
    for flag in flags {
        let (name, on) = parse_cpu_flag(flag)?;
        match name.as_str() {
            "xen-vapic" => cpu.xen_vapic = on,
            _ => return Err(CliError::CpuFlag(flag.clone())),
        }
    }
    Ok(cpu)
}

/// `+flag`, `-flag`, `flag=on|off` or bare `flag`; `_` in names reads as `-` (`+xen_vapic`).
fn parse_cpu_flag(item: &str) -> Result<(String, bool), CliError> {
    let (name, on) = if let Some(name) = item.strip_prefix('+') {
        (name, true)
    } else if let Some(name) = item.strip_prefix('-') {
        (name, false)
    } else if let Some((name, val)) = item.split_once('=') {
        let on = parse_bool(val)
            .ok_or_else(|| CliError::invalid("-cpu", item, "flag=on or flag=off"))?;
        (name, on)
    } else {
        (item, true)
    };
    Ok((name.replace('_', "-"), on))
}

/// `-m [size=]SIZE`; returns bytes.
pub fn parse_memory(value: &str) -> Result<u64, CliError> {
    let mut size = None;
    for (key, val) in parse_pairs(value, "size") {
        match key.as_str() {
            "size" => size = Some(parse_size(&val).ok_or_else(|| bad_size(&val))?),
            "slots" | "maxmem" => return Err(CliError::MemoryHotplug(key)),
            _ => return Err(unknown_key("-m", key, "size")),
        }
    }
    size.ok_or_else(|| bad_size(value))
}

fn bad_size(value: &str) -> CliError {
    CliError::invalid("-m", value, "a size like 512, 512M or 1G")
}

/// The `-smp` keys; `None` where not given.
#[derive(Debug, Default)]
struct Smp {
    cpus: Option<u64>,
    maxcpus: Option<u64>,
    sockets: Option<u64>,
    cores: Option<u64>,
    threads: Option<u64>,
}

const SMP_KEYS: &str = "cpus, maxcpus, sockets, cores, threads";

/// `-smp [cpus=]N[,maxcpus=N][,sockets=S][,cores=C][,threads=T]`; returns the vCPU count.
pub fn parse_smp(value: &str) -> Result<u32, CliError> {
    let mut smp = Smp::default();
    for (key, val) in parse_pairs(value, "cpus") {
        let slot = match key.as_str() {
            "cpus" => &mut smp.cpus,
            "maxcpus" => &mut smp.maxcpus,
            "sockets" => &mut smp.sockets,
            "cores" => &mut smp.cores,
            "threads" => &mut smp.threads,
            _ => return Err(unknown_key("-smp", key, SMP_KEYS)),
        };
        let count = parse_u64(&val).filter(|&n| n > 0 && n <= u64::from(u32::MAX));
        *slot = Some(count.ok_or_else(|| CliError::invalid("-smp", value, "a CPU count like 4"))?);
    }
    smp.resolve(value)
}

impl Smp {
    /// QEMU's rules (prefer cores over sockets): fill in what is missing, then
    /// require sockets*cores*threads == maxcpus and, without hotplug, maxcpus == cpus.
    fn resolve(&self, value: &str) -> Result<u32, CliError> {
        let given_max = self.maxcpus.or(self.cpus);
        let [sockets, cores, threads] = self.topology(given_max);
        let product = sockets.saturating_mul(cores).saturating_mul(threads);
        let maxcpus = given_max.unwrap_or(product);
        let cpus = self.cpus.unwrap_or(maxcpus);
        if product != maxcpus {
            return Err(CliError::Topology {
                value: value.to_owned(),
                product,
                maxcpus,
            });
        }
        if maxcpus > cpus {
            return Err(CliError::CpuHotplug { cpus, maxcpus });
        }
        if maxcpus < cpus {
            return Err(CliError::invalid(
                "-smp",
                value,
                "maxcpus to be at least cpus",
            ));
        }
        u32::try_from(cpus).map_err(|_| CliError::invalid("-smp", value, "a CPU count like 4"))
    }

    /// `[sockets, cores, threads]`, inferring the missing ones from `maxcpus`.
    fn topology(&self, maxcpus: Option<u64>) -> [u64; 3] {
        let (sockets, cores, threads) = (self.sockets, self.cores, self.threads);
        let Some(max) = maxcpus else {
            return [
                sockets.unwrap_or(1),
                cores.unwrap_or(1),
                threads.unwrap_or(1),
            ];
        };
        let threads_or_1 = threads.unwrap_or(1);
        match (sockets, cores) {
            (sockets, None) => {
                let sockets = sockets.unwrap_or(1);
                [
                    sockets,
                    max / sockets.saturating_mul(threads_or_1),
                    threads_or_1,
                ]
            }
            (None, Some(cores)) => [
                max / cores.saturating_mul(threads_or_1),
                cores,
                threads_or_1,
            ],
            (Some(sockets), Some(cores)) => {
                let threads = threads.unwrap_or_else(|| max / sockets.saturating_mul(cores));
                [sockets, cores, threads]
            }
        }
    }
}

/// `--timeout SECONDS` (a positive number; fractions allowed).
pub fn parse_timeout(value: &str) -> Result<Duration, CliError> {
    value
        .parse::<f64>()
        .ok()
        .filter(|seconds| *seconds > 0.0)
        .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
        .ok_or_else(|| {
            CliError::invalid(
                "--timeout",
                value,
                "a positive number of seconds like 30 or 2.5",
            )
        })
}

/// `--seccomp on|off|log`.
pub fn parse_seccomp(value: &str) -> Result<SeccompMode, CliError> {
    match value {
        "on" => Ok(SeccompMode::On),
        "off" => Ok(SeccompMode::Off),
        "log" => Ok(SeccompMode::Log),
        _ => Err(CliError::invalid("--seccomp", value, "on, off or log")),
    }
}

#[cfg(test)]
mod tests;

/// `-name NAME` or `-name guest=NAME[,debug-threads=on|off][,process=P]`.
pub fn parse_name(value: &str) -> Result<String, CliError> {
    const EXPECTED: &str = "NAME or guest=NAME[,debug-threads=on|off][,process=P]";
    let pairs = parse_pairs(value, "guest");
    let mut name = None;
    for (key, val) in pairs {
        match key.as_str() {
            "guest" => name = Some(val),
            "debug-threads" | "process" => {}
            _ => return Err(CliError::UnknownKey { option: "-name", key, supported: "guest, debug-threads, process" }),
        }
    }
    let name = name.filter(|n| !n.is_empty()).ok_or_else(|| CliError::invalid("-name", value, EXPECTED))?;
    if name.len() > 256 || name.contains(['/', '\0']) {
        return Err(CliError::invalid("-name", value, "a name of at most 256 bytes without '/'"));
    }
    Ok(name)
}
