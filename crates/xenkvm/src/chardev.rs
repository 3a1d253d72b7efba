//! Character devices and what is attached to them, in QEMU's spelling:
//!
//! * `-chardev stdio,id=ID[,mux=on][,signal=off]`,
//!   `-chardev socket,id=ID,path=P,server=on[,wait=off]` (a unix socket server),
//!   `-chardev file,id=ID,path=P` (output only), `-chardev pty,id=ID`;
//! * `-serial chardev:ID`, `-serial stdio`, `-serial mon:stdio`;
//! * `-device xen-console,chardev=ID` (the first is hvc0, the others xenbus
//!   consoles 1, 2, ...);
//! * `-mon [chardev=]ID[,mode=readline|control]`, `-qmp unix:PATH,server=on[,wait=off]`.
//!
//! The monitor is QMP only. `-mon ...,mode=control` on a socket chardev (the
//! seeds' libxl command line) and `-qmp` make QMP control sockets. In readline
//! mode `-mon` is accepted on a `mux=on` chardev, where it is the spelled-out
//! form of `-serial mon:stdio` (the serial port or a console keeps the
//! chardev; there is no Ctrl-A c human monitor).
//!
//! A chardev may be used by one front end, or by several with `mux=on`.

use std::path::PathBuf;

use xenkvm_vmm::{ChardevBackend, ChardevConfig, QmpConfig, SerialConfig};

use crate::error::CliError;
use crate::options::{parse_bool, parse_pairs};

/// The `-device` driver of a PV console.
pub const CONSOLE_MODEL: &str = "xen-console";
/// Most PV consoles (hvc0 and 15 xenbus consoles).
pub const MAX_CONSOLES: usize = 16;

const CHARDEV_KEYS: &str = "id, mux, signal (stdio), path, server, wait (socket), path (file)";
const MON_KEYS: &str = "chardev, mode, pretty";
const CONSOLE_KEYS: &str = "chardev, id";

fn bad(option: &'static str, value: &str, expected: &'static str) -> CliError {
    CliError::invalid(option, value, expected)
}

fn flag(option: &'static str, key: &str, val: &str) -> Result<bool, CliError> {
    parse_bool(val).ok_or_else(|| bad(option, &format!("{key}={val}"), "on or off"))
}

/// The `-device` values that name a PV console, and the others.
pub fn split_devices(devices: &[String]) -> (Vec<String>, Vec<String>) {
    devices
        .iter()
        .cloned()
        .partition(|d| parse_pairs(d, "driver").iter().any(|(k, v)| k == "driver" && v == CONSOLE_MODEL))
}

/// One `-chardev` value.
pub fn parse_chardev(value: &str) -> Result<ChardevConfig, CliError> {
    const OPT: &str = "-chardev";
    let pairs = parse_pairs(value, "backend");
    let kind = match pairs.first() {
        Some((k, v)) if k == "backend" => v.clone(),
        _ => return Err(bad(OPT, value, "stdio|socket|file|pty,id=ID,...")),
    };
    let (mut id, mut mux, mut signal, mut path, mut server, mut wait) = (None, false, true, None, None, true);
    for (key, val) in pairs.iter().skip(1) {
        match key.as_str() {
            "id" => id = Some(val.clone()),
            "mux" => mux = flag(OPT, key, val)?,
            "signal" if kind == "stdio" => signal = flag(OPT, key, val)?,
            "path" if kind == "socket" || kind == "file" => path = Some(PathBuf::from(val)),
            "server" if kind == "socket" => server = Some(flag(OPT, key, val)?),
            "wait" if kind == "socket" => wait = flag(OPT, key, val)?,
            "logfile" | "logappend" | "host" | "port" | "fd" | "telnet" | "websocket" | "reconnect" | "append" => {
                return Err(CliError::Unsupported(format!("-chardev {kind},{key}=...")))
            }
            _ => {
                return Err(CliError::UnknownKey { option: OPT, key: key.clone(), supported: CHARDEV_KEYS });
            }
        }
    }
    let id = id.filter(|i| !i.is_empty()).ok_or_else(|| bad(OPT, value, "an id=ID"))?;
    let need_path = || path.clone().ok_or_else(|| bad(OPT, value, "a path=P"));
    let backend = match kind.as_str() {
        "stdio" => ChardevBackend::Stdio { signal },
        "socket" => {
            let path = need_path()?;
            if server != Some(true) {
                return Err(CliError::Unsupported("-chardev socket without server=on (a client socket)".into()));
            }
            ChardevBackend::Socket { path, wait }
        }
        "file" => ChardevBackend::File { path: need_path()? },
        "pty" => ChardevBackend::Pty,
        "null" | "vc" | "pipe" | "udp" | "serial" | "tty" | "parallel" | "spicevmc" | "ringbuf" | "memory" => {
            return Err(CliError::Unsupported(format!("-chardev {kind}")))
        }
        _ => return Err(bad(OPT, value, "a backend: stdio, socket, file or pty")),
    };
    Ok(ChardevConfig { id, backend, mux })
}

/// The `-serial` value: `stdio`, `mon:stdio`, `none`, `null` or `chardev:ID`.
pub fn parse_serial(value: &str) -> Result<SerialConfig, CliError> {
    match value {
        "stdio" | "mon:stdio" => Ok(SerialConfig::Stdio),
        "none" | "null" => Ok(SerialConfig::None),
        _ => match value.strip_prefix("chardev:") {
            Some(id) if !id.is_empty() => Ok(SerialConfig::Chardev(id.to_owned())),
            _ => Err(CliError::Serial(value.to_owned())),
        },
    }
}

/// One `-device xen-console,chardev=ID`; returns the chardev id.
pub fn parse_console(value: &str) -> Result<String, CliError> {
    const OPT: &str = "-device xen-console";
    let mut chardev = None;
    for (key, val) in parse_pairs(value, "driver") {
        match key.as_str() {
            "driver" | "id" => {}
            "chardev" => chardev = Some(val),
            _ => return Err(CliError::UnknownKey { option: OPT, key, supported: CONSOLE_KEYS }),
        }
    }
    chardev.filter(|c| !c.is_empty()).ok_or_else(|| bad(OPT, value, "xen-console,chardev=ID"))
}

/// One `-mon [chardev=]ID[,mode=readline|control][,pretty=on|off]`; returns
/// the chardev id and whether it is a QMP (control) monitor.
pub fn parse_mon(value: &str) -> Result<(String, bool), CliError> {
    const OPT: &str = "-mon";
    let mut chardev = None;
    let mut control = false;
    for (key, val) in parse_pairs(value, "chardev") {
        match key.as_str() {
            "chardev" => chardev = Some(val),
            "mode" => {
                control = match val.as_str() {
                    "readline" => false,
                    "control" => true,
                    _ => return Err(bad(OPT, &format!("mode={val}"), "readline or control")),
                }
            }
            "pretty" => {
                flag(OPT, &key, &val)?;
            }
            _ => return Err(CliError::UnknownKey { option: OPT, key, supported: MON_KEYS }),
        }
    }
    let id = chardev.filter(|c| !c.is_empty()).ok_or_else(|| bad(OPT, value, "[chardev=]ID[,mode=readline|control]"))?;
    Ok((id, control))
}

/// One `-qmp unix:PATH[,server=on][,wait=off]` (also `server`, `nowait`).
/// As in QEMU, a server waits for its first client unless `wait=off`.
pub fn parse_qmp(value: &str) -> Result<QmpConfig, CliError> {
    const OPT: &str = "-qmp";
    const EXPECTED: &str = "unix:PATH,server=on[,wait=off]";
    let Some(rest) = value.strip_prefix("unix:") else {
        return Err(CliError::Unsupported(format!("-qmp {value} (only unix:PATH,server=on sockets)")));
    };
    let mut parts = rest.split(',');
    let path = parts.next().filter(|p| !p.is_empty()).ok_or_else(|| bad(OPT, value, EXPECTED))?;
    let (mut server, mut wait) = (false, true);
    for part in parts {
        let (key, val) = part.split_once('=').unwrap_or((part, "on"));
        match key {
            "server" => server = flag(OPT, key, val)?,
            "wait" => wait = flag(OPT, key, val)?,
            "nowait" => wait = false,
            _ => return Err(CliError::UnknownKey { option: OPT, key: key.to_owned(), supported: "server, wait" }),
        }
    }
    if !server {
        return Err(CliError::Unsupported(format!("-qmp {value} without server=on (a client socket)")));
    }
    Ok(QmpConfig { path: PathBuf::from(path), wait })
}

/// Everything attached to character devices, checked together.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Chardevs {
    pub chardevs: Vec<ChardevConfig>,
    pub consoles: Vec<String>,
    pub serial: Option<SerialConfig>,
    /// Socket chardevs taken over by `-mon ...,mode=control`.
    pub qmp: Vec<QmpConfig>,
}

/// Parses and cross-checks `-chardev`, `-serial`, `-device xen-console` and `-mon`.
pub fn parse_all(
    chardevs: &[String],
    serial: Option<&str>,
    consoles: &[String],
    mons: &[String],
) -> Result<Chardevs, CliError> {
    let mut out = Chardevs::default();
    for value in chardevs {
        let c = parse_chardev(value)?;
        if out.chardevs.iter().any(|o| o.id == c.id) {
            return Err(CliError::ChardevConflict { option: "-chardev", id: c.id, why: "another -chardev has that id" });
        }
        if matches!(c.backend, ChardevBackend::Stdio { .. })
            && out.chardevs.iter().any(|o| matches!(o.backend, ChardevBackend::Stdio { .. }))
        {
            return Err(CliError::ChardevConflict { option: "-chardev", id: c.id, why: "stdio is already used by another -chardev" });
        }
        out.chardevs.push(c);
    }
    out.serial = serial.map(parse_serial).transpose()?;
    out.consoles = consoles.iter().map(|c| parse_console(c)).collect::<Result<_, _>>()?;
    if out.consoles.len() > MAX_CONSOLES {
        return Err(bad("-device xen-console", &out.consoles.len().to_string(), "at most 16 consoles"));
    }
    let mons: Vec<(String, bool)> = mons.iter().map(|m| parse_mon(m)).collect::<Result<_, _>>()?;
    let (control, mons): (Vec<_>, Vec<_>) = mons.into_iter().partition(|(_, control)| *control);
    let mons: Vec<String> = mons.into_iter().map(|(id, _)| id).collect();
    for (id, _) in control {
        out.qmp.push(take_qmp_chardev(&mut out.chardevs, &id)?);
    }
    // Every use of a chardev: (option, id).
    let mut uses: Vec<(&'static str, &String)> = Vec::new();
    if let Some(SerialConfig::Chardev(id)) = &out.serial {
        uses.push(("-serial", id));
    }
    uses.extend(out.consoles.iter().map(|id| ("-device xen-console", id)));
    uses.extend(mons.iter().map(|id| ("-mon", id)));
    for (i, (option, id)) in uses.iter().enumerate() {
        let Some(c) = out.chardevs.iter().find(|c| &c.id == *id) else {
            return Err(CliError::NoSuchChardev { option, id: (*id).clone() });
        };
        let shared = uses.iter().enumerate().any(|(j, (_, other))| j != i && other == id);
        if shared && !c.mux {
            return Err(CliError::ChardevConflict { option, id: c.id.clone(), why: "that chardev is used twice; give it mux=on" });
        }
        if *option == "-mon" && !(c.mux && shared) {
            return Err(CliError::ChardevConflict {
                option,
                id: c.id.clone(),
                why: "there is no monitor: -mon is accepted only on a mux=on chardev that the serial port or a xen-console also uses",
            });
        }
    }
    Ok(out)
}

/// Turns the socket chardev `id` into a QMP socket (nothing else may use it).
fn take_qmp_chardev(chardevs: &mut Vec<ChardevConfig>, id: &str) -> Result<QmpConfig, CliError> {
    const OPT: &str = "-mon mode=control";
    let Some(pos) = chardevs.iter().position(|c| c.id == id) else {
        return Err(CliError::NoSuchChardev { option: OPT, id: id.to_owned() });
    };
    let c = chardevs.remove(pos);
    match c.backend {
        ChardevBackend::Socket { path, wait } if !c.mux => Ok(QmpConfig { path, wait }),
        _ => Err(CliError::ChardevConflict {
            option: OPT,
            id: c.id,
            why: "a QMP monitor needs a socket chardev of its own (socket,path=P,server=on, without mux=on)",
        }),
    }
}

#[cfg(test)]
mod tests;
