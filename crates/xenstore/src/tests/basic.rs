use super::*;
use crate::wire::MsgType::*;

#[test]
fn smoke() {
    let mut xs = Xenstore::default();
    let d0 = xs.connect_privileged();
    write(&mut xs, d0, 0, "/a/b/c", "hello").unwrap();
    assert_eq!(read(&mut xs, d0, 0, "/a/b/c").unwrap(), "hello");
    assert_eq!(list(&ok(&mut xs, d0, Directory, 0, &["/a"])), vec!["b"]);
    assert_eq!(err(&mut xs, d0, Read, 0, &["/nope"]), Errno::NoEnt);
    ok(&mut xs, d0, Rm, 0, &["/a"]);
    assert_eq!(read(&mut xs, d0, 0, "/a/b/c"), Err(Errno::NoEnt));
    xs.check().unwrap();
}
