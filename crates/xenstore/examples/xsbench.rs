//! xsbench: one fixed xenstore client workload over a unix socket, for
//! comparing stores side by side (`cargo xtask bench xenstore` runs it against
//! our `xenkvm xenstored` and Debian's C `xenstored` in a real Xen dom0).
//!
//! ```text
//! xsbench --socket PATH [--store NAME] [--secs S] [--depth D] [--classes read,write,...]
//! ```
//!
//! Each class runs for `S` seconds (default 1) and prints one line
//! `XSBENCH store=NAME depth=D class=C ops=N secs=T ops_per_s=R`:
//!
//! - `read`: READ of one of 16 small nodes;
//! - `write`: WRITE of one of 16 small nodes;
//! - `dir`: DIRECTORY of a node with 16 children;
//! - `watch`: a WRITE under a watched node and the WATCH_EVENT it fires;
//! - `tx`: TRANSACTION_START, READ and WRITE in it, TRANSACTION_END commit;
//! - `tx-conflict`: a transaction whose read node a second connection writes
//!   before the commit (the commit must fail with EAGAIN), then its retry;
//! - `mixed`: one batch of each class in turn (its ops are all those ops).
//!
//! `D` is how many operations the client keeps in flight on its connection
//! (1: one request, wait for its reply; more: a batch of requests written at
//! once, then their replies). Transactions are at most 8 in flight (the
//! default quota is 10 per connection). Any unexpected reply ends the run with
//! exit status 1.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use xenkvm_xenstore::wire::{Decoder, Message, MsgType};

const ROOT: &str = "/xsbench";
const KEYS: usize = 16;
const MAX_TX_DEPTH: usize = 8;
const WATCH_TOKEN: &[u8] = b"xsbench";

type Res<T> = Result<T, String>;

fn io_err(what: &str) -> impl Fn(io::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

struct Conn {
    stream: UnixStream,
    decoder: Decoder,
    buf: Vec<u8>,
    /// Replies read but not yet taken.
    replies: VecDeque<Message>,
    /// Watch events with our token not yet taken.
    events: usize,
    next_id: u32,
}

impl Conn {
    fn open(path: &PathBuf) -> Res<Conn> {
        let stream = UnixStream::connect(path).map_err(|e| format!("cannot connect to {}: {e}", path.display()))?;
        Ok(Conn {
            stream,
            decoder: Decoder::new(),
            buf: vec![0; 65536],
            replies: VecDeque::new(),
            events: 0,
            next_id: 1,
        })
    }

    /// A request with a fresh req_id.
    fn req(&mut self, ty: MsgType, tx: u32, strings: &[&[u8]]) -> Message {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        Message::with_strings(ty, id, tx, strings)
    }

    fn send(&mut self, msgs: &[Message]) -> Res<()> {
        let mut bytes = Vec::with_capacity(msgs.iter().map(Message::wire_len).sum());
        for m in msgs {
            m.encode_into(&mut bytes);
        }
        self.stream.write_all(&bytes).map_err(io_err("write to the store"))
    }

    /// Reads what the socket has and sorts it into replies and events.
    fn fill(&mut self) -> Res<()> {
        let n = self.stream.read(&mut self.buf).map_err(io_err("read from the store"))?;
        if n == 0 {
            return Err("the store closed the connection".into());
        }
        let mut msgs = Vec::new();
        self.decoder.feed_all(self.buf.get(..n).unwrap_or(&[]), &mut msgs).map_err(|e| format!("bad reply: {e}"))?;
        for m in msgs {
            if m.kind() == Some(MsgType::WatchEvent) {
                let token = m.payload.split(|b| *b == 0).nth(1).unwrap_or(&[]);
                if token == WATCH_TOKEN {
                    self.events += 1;
                }
            } else {
                self.replies.push_back(m);
            }
        }
        Ok(())
    }

    /// The next reply, which must answer `req`; an ERROR reply comes back as
    /// `Err(name)` inside `Ok`.
    fn reply(&mut self, req: &Message) -> Res<Result<Vec<u8>, String>> {
        let m = loop {
            if let Some(m) = self.replies.pop_front() {
                break m;
            }
            self.fill()?;
        };
        if m.req_id != req.req_id {
            return Err(format!("reply for req_id {} while waiting for {}", m.req_id, req.req_id));
        }
        if m.ty == MsgType::Error as u32 {
            let name = m.payload.split(|b| *b == 0).next().unwrap_or(&[]);
            return Ok(Err(String::from_utf8_lossy(name).into_owned()));
        }
        if m.ty != req.ty {
            return Err(format!("reply of type {} to a request of type {}", m.ty, req.ty));
        }
        Ok(Ok(m.payload))
    }

    /// The reply to `req`, which must not be an error.
    fn ok(&mut self, req: &Message) -> Res<Vec<u8>> {
        let name = req.kind().map_or("?", MsgType::name);
        self.reply(req)?.map_err(|e| format!("{name} failed: {e}"))
    }

    /// Sends `reqs` in one write and checks every reply succeeded.
    fn all_ok(&mut self, reqs: &[Message]) -> Res<Vec<Vec<u8>>> {
        self.send(reqs)?;
        reqs.iter().map(|r| self.ok(r)).collect()
    }

    /// Waits for `n` watch events with our token.
    fn take_events(&mut self, n: usize) -> Res<()> {
        while self.events < n {
            self.fill()?;
        }
        self.events -= n;
        Ok(())
    }
}

/// The workload state: two connections (the second makes conflicting writes).
struct Bench {
    a: Conn,
    b: Conn,
    depth: usize,
    seq: u64,
}

fn path(parts: &str) -> Vec<u8> {
    format!("{ROOT}/{parts}").into_bytes()
}

fn tx_id(payload: &[u8]) -> Res<u32> {
    let s = payload.split(|b| *b == 0).next().unwrap_or(&[]);
    std::str::from_utf8(s).ok().and_then(|s| s.parse().ok()).ok_or_else(|| "bad transaction id".to_string())
}

impl Bench {
    fn setup(&mut self) -> Res<()> {
        let rm = self.a.req(MsgType::Rm, 0, &[ROOT.as_bytes()]);
        self.a.send(std::slice::from_ref(&rm))?;
        // ENOENT when a previous run left nothing.
        let _ = self.a.reply(&rm)?;
        let mut reqs = Vec::new();
        for i in 0..KEYS {
            reqs.push(self.a.req(MsgType::Write, 0, &[&path(&format!("k{i}")), b"initial"]));
            reqs.push(self.a.req(MsgType::Write, 0, &[&path(&format!("dir/entry{i}")), b"x"]));
        }
        for i in 0..MAX_TX_DEPTH {
            reqs.push(self.a.req(MsgType::Write, 0, &[&path(&format!("t{i}")), b"0"]));
            reqs.push(self.a.req(MsgType::Write, 0, &[&path(&format!("c{i}")), b"0"]));
        }
        reqs.push(self.a.req(MsgType::Mkdir, 0, &[&path("w")]));
        self.a.all_ok(&reqs)?;
        let w = self.a.req(MsgType::Watch, 0, &[&path("w"), WATCH_TOKEN]);
        self.a.all_ok(&[w])?;
        // The event every new watch fires.
        self.a.take_events(1)
    }

    fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn read(&mut self) -> Res<usize> {
        let reqs: Vec<Message> =
            (0..self.depth).map(|j| self.a.req(MsgType::Read, 0, &[&path(&format!("k{}", j % KEYS))])).collect();
        self.a.all_ok(&reqs)?;
        Ok(self.depth)
    }

    fn write(&mut self) -> Res<usize> {
        let mut reqs = Vec::new();
        for j in 0..self.depth {
            let v = format!("value-{}", self.next());
            reqs.push(self.a.req(MsgType::Write, 0, &[&path(&format!("k{}", j % KEYS)), v.as_bytes()]));
        }
        self.a.all_ok(&reqs)?;
        Ok(self.depth)
    }

    fn dir(&mut self) -> Res<usize> {
        let reqs: Vec<Message> = (0..self.depth).map(|_| self.a.req(MsgType::Directory, 0, &[&path("dir")])).collect();
        for names in self.a.all_ok(&reqs)? {
            if names.split(|b| *b == 0).filter(|n| !n.is_empty()).count() != KEYS {
                return Err("DIRECTORY listed the wrong number of children".into());
            }
        }
        Ok(self.depth)
    }

    fn watch(&mut self) -> Res<usize> {
        let mut reqs = Vec::new();
        for j in 0..self.depth {
            let v = format!("{}", self.next());
            reqs.push(self.a.req(MsgType::Write, 0, &[&path(&format!("w/n{}", j % KEYS)), v.as_bytes()]));
        }
        self.a.all_ok(&reqs)?;
        self.a.take_events(self.depth)?;
        Ok(self.depth)
    }

    /// Starts `n` transactions at once and returns their ids.
    fn start(&mut self, n: usize) -> Res<Vec<u32>> {
        let reqs: Vec<Message> = (0..n).map(|_| self.a.req(MsgType::TransactionStart, 0, &[b""])).collect();
        self.a.all_ok(&reqs)?.iter().map(|p| tx_id(p)).collect()
    }

    /// In each transaction: READ and WRITE `node{j}`, then commit; returns the
    /// commit results.
    fn read_write_commit(&mut self, ids: &[u32], node: &str) -> Res<Vec<Result<(), String>>> {
        let mut reqs = Vec::new();
        for (j, &tx) in ids.iter().enumerate() {
            let p = path(&format!("{node}{j}"));
            let v = format!("{}", self.next());
            reqs.push(self.a.req(MsgType::Read, tx, &[&p]));
            reqs.push(self.a.req(MsgType::Write, tx, &[&p, v.as_bytes()]));
            reqs.push(self.a.req(MsgType::TransactionEnd, tx, &[b"T"]));
        }
        self.a.send(&reqs)?;
        let mut ends = Vec::new();
        for chunk in reqs.chunks(3) {
            let [read, write, end] = chunk else { return Err("internal: bad request batch".into()) };
            self.a.ok(read)?;
            self.a.ok(write)?;
            ends.push(self.a.reply(end)?.map(|_| ()));
        }
        Ok(ends)
    }

    fn tx(&mut self) -> Res<usize> {
        let n = self.depth.min(MAX_TX_DEPTH);
        let ids = self.start(n)?;
        for r in self.read_write_commit(&ids, "t")? {
            r.map_err(|e| format!("a transaction without conflict failed to commit: {e}"))?;
        }
        Ok(n)
    }

    fn tx_conflict(&mut self) -> Res<usize> {
        let n = self.depth.min(MAX_TX_DEPTH);
        let ids = self.start(n)?;
        let reads: Vec<Message> =
            ids.iter().enumerate().map(|(j, &tx)| self.a.req(MsgType::Read, tx, &[&path(&format!("c{j}"))])).collect();
        self.a.all_ok(&reads)?;
        // The second connection changes every node the transactions read.
        let mut writes = Vec::new();
        for j in 0..n {
            let v = format!("other-{}", self.next());
            writes.push(self.b.req(MsgType::Write, 0, &[&path(&format!("c{j}")), v.as_bytes()]));
        }
        self.b.all_ok(&writes)?;
        let mut reqs = Vec::new();
        for (j, &tx) in ids.iter().enumerate() {
            let v = format!("{}", self.next());
            reqs.push(self.a.req(MsgType::Write, tx, &[&path(&format!("c{j}")), v.as_bytes()]));
            reqs.push(self.a.req(MsgType::TransactionEnd, tx, &[b"T"]));
        }
        self.a.send(&reqs)?;
        for chunk in reqs.chunks(2) {
            let [write, end] = chunk else { return Err("internal: bad request batch".into()) };
            // A store may fail the write already; the commit must fail.
            match self.a.reply(write)? {
                Ok(_) => {}
                Err(e) if e == "EAGAIN" => {}
                Err(e) => return Err(format!("WRITE in a conflicting transaction failed with {e}")),
            }
            match self.a.reply(end)? {
                Err(e) if e == "EAGAIN" => {}
                Err(e) => return Err(format!("conflicting commit failed with {e}, not EAGAIN")),
                Ok(_) => return Err("a conflicting transaction committed".into()),
            }
        }
        // The retry commits.
        let ids = self.start(n)?;
        for r in self.read_write_commit(&ids, "c")? {
            r.map_err(|e| format!("the retried transaction failed to commit: {e}"))?;
        }
        Ok(n)
    }

    fn mixed(&mut self) -> Res<usize> {
        Ok(self.read()? + self.write()? + self.dir()? + self.watch()? + self.tx()? + self.tx_conflict()?)
    }

    fn run(&mut self, class: &str) -> Res<usize> {
        match class {
            "read" => self.read(),
            "write" => self.write(),
            "dir" => self.dir(),
            "watch" => self.watch(),
            "tx" => self.tx(),
            "tx-conflict" => self.tx_conflict(),
            "mixed" => self.mixed(),
            _ => Err(format!("unknown class {class:?}")),
        }
    }
}

const CLASSES: &[&str] = &["read", "write", "dir", "watch", "tx", "tx-conflict", "mixed"];

struct Args {
    socket: PathBuf,
    store: String,
    secs: f64,
    depth: usize,
    classes: Vec<String>,
}

const USAGE: &str = "usage: xsbench --socket PATH [--store NAME] [--secs S] [--depth D] [--classes read,write,dir,watch,tx,tx-conflict,mixed]";

fn parse_args(args: &[String]) -> Res<Args> {
    let mut a = Args {
        socket: PathBuf::new(),
        store: "store".into(),
        secs: 1.0,
        depth: 1,
        classes: CLASSES.iter().map(ToString::to_string).collect(),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--socket" => a.socket = PathBuf::from(value),
            "--store" => a.store = value.clone(),
            "--secs" => a.secs = value.parse().ok().filter(|s: &f64| *s > 0.0).ok_or("--secs: a number > 0")?,
            "--depth" => {
                a.depth = value.parse().ok().filter(|d| (1..=256).contains(d)).ok_or("--depth: 1 to 256")?;
            }
            "--classes" => a.classes = value.split(',').map(ToString::to_string).collect(),
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    if a.socket.as_os_str().is_empty() {
        return Err(USAGE.into());
    }
    if let Some(c) = a.classes.iter().find(|c| !CLASSES.contains(&c.as_str())) {
        return Err(format!("unknown class {c:?}; classes: {}", CLASSES.join(",")));
    }
    Ok(a)
}

fn main_inner() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args = parse_args(&args)?;
    let mut bench = Bench { a: Conn::open(&args.socket)?, b: Conn::open(&args.socket)?, depth: args.depth, seq: 0 };
    bench.setup()?;
    let limit = Duration::from_secs_f64(args.secs);
    for class in &args.classes {
        let start = Instant::now();
        let mut ops = 0;
        while start.elapsed() < limit {
            ops += bench.run(class).map_err(|e| format!("{} {class}: {e}", args.store))?;
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "XSBENCH store={} depth={} class={class} ops={ops} secs={secs:.3} ops_per_s={:.1}",
            args.store,
            args.depth,
            ops as f64 / secs
        );
    }
    Ok(())
}

fn main() {
    if let Err(e) = main_inner() {
        eprintln!("xsbench: {e}");
        std::process::exit(1);
    }
}
