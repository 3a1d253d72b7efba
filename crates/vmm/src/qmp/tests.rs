use std::sync::Mutex;

use serde_json::{json, Value};

use super::stream::Splitter;
use super::*;

#[derive(Default)]
struct FakeMachine {
    calls: Mutex<Vec<String>>,
}

impl FakeMachine {
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
    fn log(&self, s: String) {
        self.calls.lock().unwrap().push(s);
    }
}

impl Machine for FakeMachine {
    fn status(&self) -> RunStatus {
        RunStatus::Running
    }
    fn name(&self) -> Option<String> {
        Some("guest1".into())
    }
    fn request(&self, req: GuestRequest) -> Result<(), QmpError> {
        self.log(format!("{req:?}"));
        Ok(())
    }
    fn reset(&self) {
        self.log("reset".into());
    }
    fn quit(&self) {
        self.log("quit".into());
    }
    fn set_balloon_target(&self, bytes: u64) -> Result<(), QmpError> {
        if bytes > 1 << 30 {
            return Err(QmpError::generic("too big"));
        }
        self.log(format!("balloon {bytes}"));
        Ok(())
    }
    fn balloon_actual(&self) -> Result<u64, QmpError> {
        Ok(512 << 20)
    }
    fn device_add(&self, req: crate::hotplug::DeviceRequest) -> Result<(), QmpError> {
        self.log(format!("add {req:?}"));
        Ok(())
    }
    fn device_del(&self, id: &str) -> Result<(), QmpError> {
        self.log(format!("del {id}"));
        Ok(())
    }
    fn blockdev_add(&self, id: String, disk: crate::DiskConfig) -> Result<(), QmpError> {
        self.log(format!("blockdev {id} {}", disk.path.display()));
        Ok(())
    }
    fn netdev_add(&self, id: String, ifname: String) -> Result<(), QmpError> {
        self.log(format!("netdev {id} {ifname}"));
        Ok(())
    }
}

/// Feeds `text` to a session and returns every reply.
fn talk(session: &mut Session, m: &FakeMachine, text: &str) -> Vec<Value> {
    let mut splitter = Splitter::default();
    splitter.feed(text.as_bytes()).into_iter().map(|p| session.handle(p, m)).collect()
}

fn negotiated(m: &FakeMachine) -> Session {
    let mut s = Session::default();
    assert_eq!(talk(&mut s, m, r#"{"execute":"qmp_capabilities"}"#), [json!({"return": {}})]);
    s
}

fn error_class(v: &Value) -> &str {
    v["error"]["class"].as_str().unwrap_or("none")
}

#[test]
fn commands_wait_for_capabilities_negotiation() {
    let m = FakeMachine::default();
    let mut s = Session::default();
    let r = talk(&mut s, &m, r#"{"execute":"quit"}{"execute":"qmp_capabilities","id":7}{"execute":"qmp_capabilities"}"#);
    assert_eq!(error_class(&r[0]), "CommandNotFound");
    assert_eq!(r[1], json!({"return": {}, "id": 7}));
    assert_eq!(error_class(&r[2]), "CommandNotFound");
    assert!(m.calls().is_empty(), "quit before negotiation must not run");
    assert!(s.negotiated());
}

#[test]
fn the_greeting_names_xenkvm_and_a_qemu_version() {
    let g = greeting();
    assert_eq!(g["QMP"]["version"]["qemu"]["major"], 10);
    assert!(g["QMP"]["version"]["package"].as_str().unwrap().starts_with("xenkvm"));
    assert_eq!(g["QMP"]["capabilities"], json!([]));
}

#[test]
fn host_requests_reach_the_machine() {
    let m = FakeMachine::default();
    let mut s = negotiated(&m);
    let r = talk(
        &mut s,
        &m,
        r#"{"execute":"system_powerdown"}
           {"execute":"xen-shutdown","arguments":{"reason":"reboot"}}
           {"execute":"xen-shutdown","arguments":{"reason":"crash"}}
           {"execute":"system_reset","id":"r"}
           {"execute":"quit"}"#,
    );
    assert!(r.iter().all(|v| v.get("return").is_some()), "{r:?}");
    assert_eq!(r[3]["id"], "r");
    assert_eq!(m.calls(), ["Poweroff", "Reboot", "Crash", "reset", "quit"]);
}

#[test]
fn bad_arguments_are_refused_with_qemu_style_errors() {
    let m = FakeMachine::default();
    let mut s = negotiated(&m);
    let r = talk(
        &mut s,
        &m,
        r#"{"execute":"xen-shutdown"}
           {"execute":"xen-shutdown","arguments":{"reason":"explode"}}
           {"execute":"xen-shutdown","arguments":{"reason":3}}
           {"execute":"balloon","arguments":{"value":-5}}
           {"execute":"balloon","arguments":{"value":2147483648}}
           {"execute":"quit","arguments":{"now":true}}
           {"execute":"no-such-command"}
           {"execute":5}
           {"arguments":{}}
           {"execute":"quit","arguments":[]}
           ["not","an","object"]
           {"execute":"quit","bogus":1}
           {"execute":"quit","exec-oob":true}"#,
    );
    let descs: Vec<&str> = r.iter().map(|v| v["error"]["desc"].as_str().unwrap_or("NO ERROR")).collect();
    assert_eq!(descs[0], "Parameter 'reason' is missing");
    assert!(descs[1].contains("'explode'"));
    assert!(descs[2].contains("expected: string"));
    assert_eq!(descs[3], "Parameter 'value' expects a size");
    assert_eq!(descs[4], "too big");
    assert_eq!(descs[5], "Parameter 'now' is unexpected");
    assert_eq!(error_class(&r[6]), "CommandNotFound");
    assert!(descs[7..].iter().all(|d| d != &"NO ERROR"), "{descs:?}");
    assert!(m.calls().is_empty(), "no bad command may act: {:?}", m.calls());
}

#[test]
fn malformed_json_gets_an_error_and_the_session_goes_on() {
    let m = FakeMachine::default();
    let mut s = negotiated(&m);
    let r = talk(&mut s, &m, r#"{"execute":} {"execute":"query-status","id":1}"#);
    assert!(r[0]["error"]["desc"].as_str().unwrap().starts_with("JSON parse error"));
    assert_eq!(r[1], json!({"return": {"status": "running", "running": true}, "id": 1}));
}

#[test]
fn queries_answer() {
    let m = FakeMachine::default();
    let mut s = negotiated(&m);
    let r = talk(&mut s, &m, r#"{"execute":"query-balloon"}{"execute":"query-name"}{"execute":"query-commands"}{"execute":"balloon","arguments":{"value":268435456}}"#);
    assert_eq!(r[0]["return"]["actual"], 512u64 << 20);
    assert_eq!(r[1]["return"]["name"], "guest1");
    let names: Vec<&str> = r[2]["return"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), COMMANDS.len());
    assert!(names.contains(&"xen-shutdown"));
    assert_eq!(m.calls(), ["balloon 268435456"]);
}

#[test]
fn hotplug_commands_reach_the_machine() {
    let m = FakeMachine::default();
    let mut s = negotiated(&m);
    let r = talk(
        &mut s,
        &m,
        r#"{"execute":"blockdev-add","arguments":{"driver":"raw","node-name":"img","file":"/tmp/x"}}
           {"execute":"device_add","arguments":{"driver":"xen-disk","id":"d1","drive":"img"}}
           {"execute":"netdev_add","arguments":{"type":"tap","id":"t1","ifname":"tap1"}}
           {"execute":"device_del","arguments":{"id":"d1"}}
           {"execute":"device_del","arguments":{"id":"d1","force":true}}"#,
    );
    assert!(r[..4].iter().all(|v| v.get("return").is_some()), "{r:?}");
    assert_eq!(r[4]["error"]["desc"], "Parameter 'force' is unexpected");
    assert_eq!(m.calls(), ["blockdev img /tmp/x", "add Disk { id: \"d1\", drive: \"img\", vdev: None, cdrom: false }", "netdev t1 tap1", "del d1"]);
}

#[test]
fn events_carry_a_timestamp() {
    let e = event("SHUTDOWN", json!({"guest": true}));
    assert_eq!(e["event"], "SHUTDOWN");
    assert!(e["timestamp"]["seconds"].as_u64().unwrap() > 1_600_000_000);
}
