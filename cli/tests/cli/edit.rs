//! `kage edit` with a scripted `EDITOR`.

use crate::harness::{Dir, mode, secret_data, secret_yaml, values};

fn sealed() -> Dir {
    let dir = Dir::new();
    let r = dir.keygen("key.txt");
    dir.write("in.yaml", secret_yaml("db", "prod"));
    let sealed = dir.kage(&["seal", "in.yaml", "-r", &r]).run().ok();
    dir.write("db.yaml", &sealed);
    dir.write("recipient.txt", format!("{r}\n"));
    dir
}

fn line<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find(|l| l.trim_start().starts_with(&format!("{key}: ")))
        .unwrap()
}

#[test]
fn edit_changes_one_value_and_keeps_the_others() {
    let dir = sealed();
    let before = dir.read("db.yaml");
    // the editor sees plaintext in a private temp file, and records where it was
    let script = dir.write(
        "ed.sh",
        "#!/bin/sh\nls -l \"$1\" | cut -c1-10 > \"$(dirname \"$0\")/perm\"\necho \"$1\" > \"$(dirname \"$0\")/where\"\n\
         sed -i 's/username: admin/username: root/' \"$1\"\n",
    );
    let script = script.display().to_string();
    dir.kage(&["edit", "db.yaml", "-i", "key.txt", "-R", "recipient.txt"])
        .env("EDITOR", format!("sh {script}"))
        .run()
        .ok();
    let after = dir.read("db.yaml");
    assert_eq!(line(&before, "password"), line(&after, "password"));
    assert_ne!(line(&before, "username"), line(&after, "username"));
    let plain = dir.kage(&["unseal", "db.yaml", "-i", "key.txt"]).run().ok();
    assert_eq!(secret_data(&values(&plain)[0])["username"], b"root");
    assert_eq!(dir.read("perm").trim(), "-rw-------");
    let tmp = dir.read("where");
    assert!(
        !std::path::Path::new(tmp.trim()).exists(),
        "temp file left behind"
    );
    assert_eq!(mode(&dir.path("db.yaml")), 0o644);
}

#[test]
fn no_change_no_write() {
    let dir = sealed();
    let before = std::fs::metadata(dir.path("db.yaml"))
        .unwrap()
        .modified()
        .unwrap();
    let run = dir
        .kage(&["edit", "db.yaml", "-i", "key.txt"])
        .env("EDITOR", "true")
        .run();
    run.ok();
    assert!(run.stderr.contains("no change"));
    let after = std::fs::metadata(dir.path("db.yaml"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after);
}

#[test]
fn invalid_yaml_aborts_without_touching_the_file() {
    let dir = sealed();
    let before = dir.read("db.yaml");
    let err = dir
        .kage(&["edit", "db.yaml", "-i", "key.txt", "-R", "recipient.txt"])
        .env("EDITOR", "sh -c 'echo \"stringData: [\" >> \"$0\"'")
        .run()
        .fails(1);
    assert!(err.contains("nothing was written"), "{err}");
    assert_eq!(dir.read("db.yaml"), before);
    // a failing editor aborts too
    dir.kage(&["edit", "db.yaml", "-i", "key.txt"])
        .env("EDITOR", "false")
        .run()
        .fails(1);
    assert_eq!(dir.read("db.yaml"), before);
}

#[test]
fn ctrl_c_in_the_editor_removes_the_plaintext_and_writes_nothing() {
    let dir = sealed();
    let before = dir.read("db.yaml");
    // the "editor" changes the file, then sends SIGINT to kage (as a Ctrl-C on the terminal would)
    let script = dir.write(
        "ed.sh",
        "#!/bin/sh\necho \"$1\" > \"$(dirname \"$0\")/where\"\nsed -i 's/admin/root/' \"$1\"\n\
         p=$PPID\nwhile [ \"$(cat /proc/$p/comm)\" != kage ]; do p=$(cut -d' ' -f4 /proc/$p/stat); done\n\
         kill -INT $p\nsleep 0.2\n",
    );
    let run = dir
        .kage(&["edit", "db.yaml", "-i", "key.txt", "-R", "recipient.txt"])
        .env("EDITOR", format!("sh {}", script.display()))
        .run();
    assert_eq!(run.code, 130, "{}", run.stderr);
    assert_eq!(dir.read("db.yaml"), before);
    let tmp = dir.read("where");
    assert!(
        !std::path::Path::new(tmp.trim()).exists(),
        "plaintext temp file left behind"
    );
}

/// Waits (bounded, no timing assertion) until `cond` holds.
fn wait_until(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..6000 {
        if cond() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("{what} never happened");
}

/// Whether process `pid` is gone (or a zombie nobody reaped yet).
fn process_gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// Kills a process left running by a failed test.
struct KillOnDrop(String);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if !process_gone(&self.0) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &self.0])
                .status();
        }
    }
}

#[test]
fn sigterm_sighup_sigquit_remove_the_plaintext_and_stop_the_editor() {
    for (sig, code) in [("TERM", 143), ("HUP", 129), ("QUIT", 131)] {
        let dir = sealed();
        let before = dir.read("db.yaml");
        // the "editor" says where the plaintext is and who it is, then waits for ever
        let script = dir.write(
            "ed.sh",
            "#!/bin/sh\nd=$(dirname \"$0\")\necho $$ > \"$d/editor.pid\"\necho \"$1\" > \"$d/where.tmp\"\n\
             mv \"$d/where.tmp\" \"$d/where\"\nexec sleep 600\n",
        );
        let mut kage = dir
            .kage(&["edit", "db.yaml", "-i", "key.txt", "-R", "recipient.txt"])
            .env("EDITOR", format!("sh {}", script.display()))
            .spawn_quiet();
        wait_until("the editor start", || dir.exists("where"));
        let tmp = dir.read("where");
        let tmp = std::path::Path::new(tmp.trim());
        assert!(tmp.exists());
        let editor = dir.read("editor.pid").trim().to_string();
        let sent = std::process::Command::new("kill")
            .args([&format!("-{sig}"), &kage.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let _editor = KillOnDrop(editor.clone());
        let status = kage.wait().unwrap();
        assert_eq!(status.code(), Some(code), "SIG{sig}: {status}");
        assert!(!tmp.exists(), "SIG{sig}: plaintext temp file left behind");
        assert!(
            !tmp.parent().unwrap().exists(),
            "SIG{sig}: temp directory left behind"
        );
        assert_eq!(dir.read("db.yaml"), before, "SIG{sig}");
        wait_until("the editor stop", || process_gone(&editor));
    }
}
