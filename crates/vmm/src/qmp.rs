//! The QMP control socket: a subset of QEMU's machine protocol, enough for
//! libxl-style toolstacks, scripts and the `qemu.qmp` Python client.
//!
//! A client gets a greeting, must send `qmp_capabilities`, and then runs
//! commands; each command gets one `return` or `error` reply carrying the
//! client's `id`, and negotiated clients also receive events (`SHUTDOWN`,
//! `RESET`, `POWERDOWN`). The protocol lives here, on the [`Machine`] trait;
//! [`machine::VmHandle`] implements it on the running VM and [`server`] serves
//! the sockets. Supported commands: [`COMMANDS`].

mod devices;
pub mod machine;
pub mod server;
mod stream;

use serde_json::{json, Map, Value};

pub use stream::Piece;

use crate::hotplug::DeviceRequest;
use crate::DiskConfig;

/// What the VM is doing, as `query-status` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// Between guest runs (building or restarting).
    Prelaunch,
    Running,
    /// The guest shut down and `-no-shutdown` keeps xenkvm alive.
    Shutdown,
}

impl RunStatus {
    fn name(self) -> &'static str {
        match self {
            Self::Prelaunch => "prelaunch",
            Self::Running => "running",
            Self::Shutdown => "shutdown",
        }
    }
}

/// A request the host makes to the guest's PV control driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestRequest {
    Poweroff,
    Reboot,
    Suspend,
    Halt,
    /// Made through `control/sysrq` = `c`: Xen's control/shutdown has no crash.
    Crash,
}

impl GuestRequest {
    fn parse(reason: &str) -> Option<Self> {
        Some(match reason {
            "poweroff" => Self::Poweroff,
            "reboot" => Self::Reboot,
            "suspend" => Self::Suspend,
            "halt" => Self::Halt,
            "crash" => Self::Crash,
            _ => return None,
        })
    }
}

/// A failed command, as QMP reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QmpError {
    pub class: &'static str,
    pub desc: String,
}

impl QmpError {
    pub fn generic(desc: impl Into<String>) -> Self {
        Self { class: "GenericError", desc: desc.into() }
    }
    fn not_found(desc: impl Into<String>) -> Self {
        Self { class: "CommandNotFound", desc: desc.into() }
    }
}

/// The VM as QMP commands see it.
pub trait Machine: Send + Sync {
    fn status(&self) -> RunStatus;
    fn name(&self) -> Option<String>;
    /// Asks the guest (through xenstore) to shut down, reboot, ...
    fn request(&self, req: GuestRequest) -> Result<(), QmpError>;
    /// Resets the machine at once, as a reset button does.
    fn reset(&self);
    /// Ends xenkvm.
    fn quit(&self);
    /// Sets the guest's balloon target (`memory/target`), in bytes.
    fn set_balloon_target(&self, bytes: u64) -> Result<(), QmpError>;
    /// The guest's current memory, in bytes.
    fn balloon_actual(&self) -> Result<u64, QmpError>;
    /// Plugs a PV device into the running guest.
    fn device_add(&self, req: DeviceRequest) -> Result<(), QmpError>;
    /// Starts unplugging a hotplugged device (`DEVICE_DELETED` when done).
    fn device_del(&self, id: &str) -> Result<(), QmpError>;
    /// Defines a disk image for a later `device_add`.
    fn blockdev_add(&self, id: String, disk: DiskConfig) -> Result<(), QmpError>;
    /// Defines a tap for a later `device_add`.
    fn netdev_add(&self, id: String, ifname: String) -> Result<(), QmpError>;
}

/// Each command and the arguments it takes.
pub const COMMANDS: &[(&str, &[&str])] = &[
    ("qmp_capabilities", &["enable"]),
    ("query-commands", &[]),
    ("query-version", &[]),
    ("query-status", &[]),
    ("query-name", &[]),
    ("system_powerdown", &[]),
    ("system_reset", &[]),
    ("quit", &[]),
    ("xen-shutdown", &["reason"]),
    ("balloon", &["value"]),
    ("query-balloon", &[]),
    ("device_add", devices::ANY),
    ("device_del", &["id"]),
    ("blockdev-add", devices::ANY),
    ("netdev_add", devices::ANY),
];

/// The greeting sent when a client connects.
pub fn greeting() -> Value {
    let version = json!({ "qemu": { "major": 10, "minor": 2, "micro": 0 }, "package": package() });
    json!({ "QMP": { "version": version, "capabilities": [] } })
}

fn package() -> String {
    format!("xenkvm {}", env!("CARGO_PKG_VERSION"))
}

/// An event message.
pub fn event(name: &str, data: Value) -> Value {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    json!({ "event": name, "data": data, "timestamp": { "seconds": now.as_secs(), "microseconds": now.subsec_micros() } })
}

/// One client's protocol state.
#[derive(Default)]
pub struct Session {
    negotiated: bool,
}

impl Session {
    /// Whether the client finished capabilities negotiation (and gets events).
    pub fn negotiated(&self) -> bool {
        self.negotiated
    }

    /// Answers one piece of the client's stream.
    pub fn handle(&mut self, piece: Piece, machine: &dyn Machine) -> Value {
        let request = match piece {
            Piece::Invalid(why) => return reply(None, Err(QmpError::generic(format!("JSON parse error, {why}")))),
            Piece::Value(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(v) => v,
                Err(e) => return reply(None, Err(QmpError::generic(format!("JSON parse error, {e}")))),
            },
        };
        let Value::Object(mut request) = request else {
            return reply(None, Err(QmpError::generic("QMP input must be a JSON object")));
        };
        let id = request.remove("id");
        reply(id, self.execute(request, machine))
    }

    fn execute(&mut self, mut request: Map<String, Value>, machine: &dyn Machine) -> Result<Value, QmpError> {
        if request.contains_key("exec-oob") {
            return Err(QmpError::generic("out-of-band execution is not supported"));
        }
        let name = match request.remove("execute") {
            Some(Value::String(name)) => name,
            Some(_) => return Err(QmpError::generic("QMP input member 'execute' must be a string")),
            None => return Err(QmpError::generic("QMP input lacks member 'execute'")),
        };
        let args = match request.remove("arguments") {
            None => Map::new(),
            Some(Value::Object(args)) => args,
            Some(_) => return Err(QmpError::generic("QMP input member 'arguments' must be an object")),
        };
        if let Some(key) = request.keys().next() {
            return Err(QmpError::generic(format!("QMP input member '{key}' is unexpected")));
        }
        let Some((_, allowed)) = COMMANDS.iter().find(|(n, _)| *n == name) else {
            return Err(QmpError::not_found(format!("The command {name} has not been found")));
        };
        if let Some(key) = args.keys().find(|k| *allowed != devices::ANY && !allowed.contains(&k.as_str())) {
            return Err(QmpError::generic(format!("Parameter '{key}' is unexpected")));
        }
        self.command(&name, &args, machine)
    }

    fn command(&mut self, name: &str, args: &Map<String, Value>, machine: &dyn Machine) -> Result<Value, QmpError> {
        if name == "qmp_capabilities" {
            return self.negotiate(args);
        }
        if !self.negotiated {
            return Err(QmpError::not_found("Expecting capabilities negotiation with 'qmp_capabilities'"));
        }
        let done = Ok(json!({}));
        match name {
            "query-commands" => Ok(COMMANDS.iter().map(|(n, _)| json!({ "name": n })).collect()),
            "query-version" => Ok(greeting()["QMP"]["version"].clone()),
            "query-status" => {
                let s = machine.status();
                Ok(json!({ "status": s.name(), "running": s == RunStatus::Running }))
            }
            "query-name" => Ok(machine.name().map_or_else(|| json!({}), |n| json!({ "name": n }))),
            "system_powerdown" => machine.request(GuestRequest::Poweroff).and(done),
            "system_reset" => {
                machine.reset();
                done
            }
            "quit" => {
                machine.quit();
                done
            }
            "xen-shutdown" => {
                let reason = string_arg(args, "reason")?;
                let req = GuestRequest::parse(reason).ok_or_else(|| {
                    QmpError::generic(format!("Parameter 'reason' does not accept value '{reason}' (poweroff, reboot, suspend, crash or halt)"))
                })?;
                machine.request(req).and(done)
            }
            "balloon" => {
                let value = args.get("value").ok_or_else(|| missing("value"))?;
                let bytes = value.as_u64().filter(|b| *b > 0).ok_or_else(|| QmpError::generic("Parameter 'value' expects a size"))?;
                machine.set_balloon_target(bytes).and(done)
            }
            "query-balloon" => Ok(json!({ "actual": machine.balloon_actual()? })),
            "device_add" => machine.device_add(devices::device_add(args)?).and(done),
            "device_del" => machine.device_del(&devices::device_del(args)?).and(done),
            "blockdev-add" => {
                let (id, disk) = devices::blockdev_add(args)?;
                machine.blockdev_add(id, disk).and(done)
            }
            "netdev_add" => {
                let (id, ifname) = devices::netdev_add(args)?;
                machine.netdev_add(id, ifname).and(done)
            }
            _ => Err(QmpError::not_found(format!("The command {name} has not been found"))),
        }
    }

    fn negotiate(&mut self, args: &Map<String, Value>) -> Result<Value, QmpError> {
        if self.negotiated {
            return Err(QmpError::not_found("Capabilities negotiation is already complete, command ignored"));
        }
        match args.get("enable") {
            None => {}
            Some(Value::Array(caps)) if caps.is_empty() => {}
            Some(Value::Array(caps)) => {
                return Err(QmpError::generic(format!("Capability '{}' not available", caps.first().and_then(Value::as_str).unwrap_or("?"))))
            }
            Some(_) => return Err(QmpError::generic("Invalid parameter type for 'enable', expected: array")),
        }
        self.negotiated = true;
        Ok(json!({}))
    }
}

fn missing(name: &str) -> QmpError {
    QmpError::generic(format!("Parameter '{name}' is missing"))
}

fn string_arg<'a>(args: &'a Map<String, Value>, name: &str) -> Result<&'a str, QmpError> {
    match args.get(name) {
        None => Err(missing(name)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(QmpError::generic(format!("Invalid parameter type for '{name}', expected: string"))),
    }
}

fn reply(id: Option<Value>, result: Result<Value, QmpError>) -> Value {
    let mut out = match result {
        Ok(v) => json!({ "return": v }),
        Err(e) => json!({ "error": { "class": e.class, "desc": e.desc } }),
    };
    if let (Some(id), Value::Object(map)) = (id, &mut out) {
        map.insert("id".into(), id);
    }
    out
}

#[cfg(test)]
mod tests;
