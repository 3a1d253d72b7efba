//! `xenkvm qmp SOCKET COMMAND [ARGUMENTS-JSON]`: runs one QMP command on a
//! running xenkvm (negotiating capabilities first) and prints its result as
//! JSON; a QMP error is printed and ends with status 1. For scripts and the
//! nested test harness, where no Python QMP client is at hand.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use crate::error::CliError;

/// A parsed `xenkvm qmp` call.
pub struct Call {
    path: PathBuf,
    command: String,
    arguments: Option<Value>,
}

const USAGE: &str = "xenkvm qmp SOCKET COMMAND ['{\"arg\": value}']";

/// Parses the arguments after `qmp`.
pub fn parse(args: &[OsString]) -> Result<Call, CliError> {
    let text: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let bad = || CliError::invalid("qmp", &text.join(" "), USAGE);
    let (path, command, arguments) = match text.as_slice() {
        [p, c] => (p, c, None),
        [p, c, a] => (p, c, Some(serde_json::from_str::<Value>(a).map_err(|_| bad())?)),
        _ => return Err(bad()),
    };
    if arguments.as_ref().is_some_and(|a| !a.is_object()) || command.is_empty() {
        return Err(bad());
    }
    Ok(Call { path: PathBuf::from(path), command: command.clone(), arguments })
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum QmpCallError {
    #[error("QMP socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("QMP: xenkvm closed the connection")]
    Closed,
    #[error("QMP: unreadable reply {0:?}")]
    BadReply(String),
    #[error("QMP error {class}: {desc}")]
    Command { class: String, desc: String },
}

/// Runs the call and returns the command's result.
pub fn run(call: &Call) -> Result<Value, QmpCallError> {
    let stream = UnixStream::connect(&call.path)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    read_reply(&mut reader)?; // the greeting
    execute(&mut writer, &mut reader, json!({"execute": "qmp_capabilities"}))?;
    let mut request = json!({"execute": call.command});
    if let Some(args) = &call.arguments {
        request["arguments"] = args.clone();
    }
    execute(&mut writer, &mut reader, request)
}

fn execute(writer: &mut UnixStream, reader: &mut BufReader<UnixStream>, request: Value) -> Result<Value, QmpCallError> {
    writer.write_all(format!("{request}\n").as_bytes())?;
    let reply = read_reply(reader)?;
    if let Some(err) = reply.get("error") {
        let field = |k: &str| err.get(k).and_then(Value::as_str).unwrap_or("?").to_owned();
        return Err(QmpCallError::Command { class: field("class"), desc: field("desc") });
    }
    Ok(reply.get("return").cloned().unwrap_or(Value::Null))
}

/// The next message that is not an event.
fn read_reply(reader: &mut BufReader<UnixStream>) -> Result<Value, QmpCallError> {
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(QmpCallError::Closed);
        }
        let v: Value = serde_json::from_str(&line).map_err(|_| QmpCallError::BadReply(line.clone()))?;
        if v.get("event").is_none() {
            return Ok(v);
        }
    }
}
