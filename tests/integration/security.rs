//! Security (#7): secrets never reach the journal or any reader, logs are private whatever
//! the umask, task text reaches hooks and agents only as data, reviewers run read-only and no
//! worker bypasses its CLI's sandbox unless the config says so (and `looper doctor` warns).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::rc::Rc;

use serde_json::{Value, json};

use crate::figures::{Figure, record};
use crate::harness::{Env, Lcg, walk};

impl Lcg {
    fn pick(&mut self, alphabet: &str, len: usize) -> String {
        let chars: Vec<char> = alphabet.chars().collect();
        (0..len)
            .map(|_| chars[usize::try_from(self.next()).unwrap() % chars.len()])
            .collect()
    }
}

const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const URLSAFE: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const BASE64: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// A kind of secret: the variable a user would keep it in, whether only that variable's
/// name makes it recognisable (no shape of its own), and a generator of realistic values.
struct Kind {
    name: &'static str,
    var: &'static str,
    by_name_only: bool,
    make: fn(&mut Lcg) -> String,
}

fn pem(rng: &mut Lcg) -> String {
    let mut lines = vec!["-----BEGIN PRIVATE KEY-----".to_owned()];
    lines.push(format!(
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQ{}",
        rng.pick(BASE64, 14)
    ));
    for _ in 0..12 {
        lines.push(rng.pick(BASE64, 64));
    }
    lines.push(format!("{}==", rng.pick(BASE64, 42)));
    lines.push("-----END PRIVATE KEY-----".to_owned());
    lines.join("\n")
}

const KINDS: &[Kind] = &[
    Kind {
        name: "openai",
        var: "OPENAI_API_KEY",
        by_name_only: false,
        make: |r| format!("sk-proj-{}", r.pick(URLSAFE, 120)),
    },
    Kind {
        name: "anthropic",
        var: "ANTHROPIC_API_KEY",
        by_name_only: false,
        make: |r| format!("sk-ant-api03-{}AA", r.pick(URLSAFE, 93)),
    },
    Kind {
        name: "github classic",
        var: "GITHUB_TOKEN",
        by_name_only: false,
        make: |r| format!("ghp_{}", r.pick(ALNUM, 36)),
    },
    Kind {
        name: "github fine-grained",
        var: "GH_PAT",
        by_name_only: false,
        make: |r| format!("github_pat_11{}_{}", r.pick(ALNUM, 20), r.pick(ALNUM, 59)),
    },
    Kind {
        name: "aws access key id",
        var: "AWS_ACCESS_KEY_ID",
        by_name_only: false,
        make: |r| format!("AKIA{}", r.pick("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)),
    },
    Kind {
        name: "aws secret key",
        var: "AWS_SECRET_ACCESS_KEY",
        by_name_only: true,
        make: |r| r.pick(BASE64, 40),
    },
    Kind {
        name: "google",
        var: "GOOGLE_API_KEY",
        by_name_only: false,
        make: |r| format!("AIza{}", r.pick(URLSAFE, 35)),
    },
    Kind {
        name: "slack",
        var: "SLACK_BOT_TOKEN",
        by_name_only: false,
        make: |r| {
            format!(
                "xoxb-{}-{}-{}",
                r.pick("0123456789", 12),
                r.pick("0123456789", 13),
                r.pick(ALNUM, 24)
            )
        },
    },
    Kind {
        name: "jwt bearer",
        var: "API_JWT",
        by_name_only: false,
        make: |r| {
            format!(
                "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJ{}.{}",
                r.pick(URLSAFE, 60),
                r.pick(URLSAFE, 43)
            )
        },
    },
    Kind {
        name: "*_TOKEN value",
        var: "DEPLOY_TOKEN",
        by_name_only: true,
        make: |r| format!("dt-{}", r.pick(ALNUM, 28)),
    },
    Kind {
        name: "*_SECRET value",
        var: "WEBHOOK_SECRET",
        by_name_only: true,
        make: |r| format!("whs{}", r.pick(ALNUM, 24)),
    },
    Kind {
        name: "*_KEY value",
        var: "LICENSE_KEY",
        by_name_only: true,
        make: |r| format!("LK-{}-{}", r.pick(ALNUM, 8), r.pick(ALNUM, 16)),
    },
    Kind {
        name: "private key PEM",
        var: "DEPLOY_SSH_KEY",
        by_name_only: false,
        make: pem,
    },
];

/// Where a secret is put: in Looper's (and so the agent's) environment, which the agent
/// prints; in a task's title or description (so in the prompt); in the agent's stdout
/// (stream lines and final message), its stderr, its report's summary, or the title of a
/// task its report discovers.
const PLACES: &[&str] = &[
    "env",
    "title",
    "description",
    "agent stdout",
    "agent stderr",
    "report summary",
    "discovered task",
];

/// What must never show up for a secret: the value, or for a PEM block each line of its body.
fn needles(value: &str) -> Vec<String> {
    if value.contains("-----BEGIN") {
        value
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::to_owned)
            .collect()
    } else {
        vec![value.to_owned()]
    }
}

/// How the secret is written where it is placed: a bearer token with its header.
fn placed(kind: &Kind, value: &str) -> String {
    if kind.name == "jwt bearer" {
        format!("Authorization: Bearer {value}")
    } else {
        value.to_owned()
    }
}

/// Files under `LOOPER_HOME` that are copies of the backlog itself (the merge base, the
/// versions kept to merge stale edits against, the listing index, a pending update, the
/// replaced version parked to be written over by the next write): the
/// backlog holds what the user typed into it, and a redacted merge base would make every run
/// see an edit that never happened.
fn is_backlog_copy(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let parent = path.parent();
    let in_history = parent.is_some_and(|p| {
        p.parent().is_some_and(|s| s.ends_with("state"))
            && p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("backlog-") && n.ends_with(".history"))
    });
    in_history
        || parent.is_some_and(|p| p.ends_with("state"))
            && name.starts_with("backlog-")
            && [".last.json", ".index", ".pending.json", ".spare"]
                .iter()
                .any(|s| name.ends_with(s))
}

fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The secret-leaking worker: prints its stdout and stderr files and its environment, then
/// the report file of its task.
const LEAKY_WORKER: &str = r#"#!/bin/sh
prompt=$(cat)
id=$(printf '%s\n' "$prompt" | sed -n 's/^## Your task: \([^ ]*\) .*/\1/p' | head -1)
cat agents/stdout.txt
cat agents/stderr.txt >&2
env
echo "$id" > "out-$id.txt"
cat "agents/report-$id.json"
"#;

/// (kind, place) -> the value placed there.
type Secrets = BTreeMap<(usize, usize), String>;

/// One secret per kind and place, and the environment that holds those of them that only
/// a variable's name makes secret (and every kind, for the "env" place).
fn make_secrets() -> (Secrets, Vec<(String, String)>) {
    let mut rng = Lcg(0x005e_c2e7);
    // (kind, place) -> the value placed there.
    let mut secrets: BTreeMap<(usize, usize), String> = BTreeMap::new();
    let mut vars: Vec<(String, String)> = Vec::new();
    for (k, kind) in KINDS.iter().enumerate() {
        for (p, place) in PLACES.iter().enumerate() {
            let value = (kind.make)(&mut rng);
            if *place == "env" {
                vars.push((kind.var.to_owned(), value.clone()));
            } else if kind.by_name_only {
                // Without a shape, only the variable it came from makes it a secret.
                vars.push((format!("P{p}_{}", kind.var), value.clone()));
            }
            secrets.insert((k, p), value);
        }
    }
    (secrets, vars)
}

/// Plants the secrets (a task, the worker's output and report) and runs `looper run`.
fn plant_and_run(env: &Rc<Env>, secrets: &Secrets, vars: &[(String, String)]) -> Output {
    let in_place = |p: usize, sep: &str| -> String {
        KINDS
            .iter()
            .enumerate()
            .map(|(k, kind)| placed(kind, &secrets[&(k, p)]))
            .collect::<Vec<_>>()
            .join(sep)
    };
    let place = |name: &str| PLACES.iter().position(|p| *p == name).unwrap();
    let with_vars = |mut cmd: Command| {
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd
    };
    let ok = |out: Output| {
        assert!(out.status.success(), "{}", output_text(&out));
        out
    };
    ok(with_vars(env.command(&["init"])).output().unwrap());
    let title = format!("Rotate the credentials {}", in_place(place("title"), " "));
    let description = format!("Use these:\n{}", in_place(place("description"), "\n"));
    ok(with_vars(env.command(&["add", &title, "-d", &description]))
        .output()
        .unwrap());
    env.write(
        "agents/stdout.txt",
        format!("{}\n", in_place(place("agent stdout"), "\nusing ")),
    );
    env.write(
        "agents/stderr.txt",
        format!("{}\n", in_place(place("agent stderr"), "\nwarning: ")),
    );
    let report = json!({
        "task_id": "T1", "status": "done",
        "summary": format!("rotated {}", in_place(place("report summary"), " and ")),
        "discovered_tasks": [{"title": format!("Revoke {}", in_place(place("discovered task"), " ")), "priority": 2}],
    });
    env.write("agents/report-T1.json", format!("{report}\n"));
    env.write(
        "agents/report-T2.json",
        "{\"task_id\": \"T2\", \"status\": \"done\", \"summary\": \"revoked\"}\n",
    );
    env.write_executable("agents/worker", LEAKY_WORKER);
    env.write_executable(
        "agents/reviewer",
        "#!/bin/sh\ncat > /dev/null\nenv >&2\necho '{\"status\": \"reviewed\", \"summary\": \"complete\", \"new_tasks\": [], \"done\": true}'\n",
    );
    let run = with_vars(env.command(&[
        "run",
        "--worker",
        "cmd:./agents/worker",
        "--reviewer",
        "cmd:./agents/reviewer",
    ]))
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .output()
    .unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", output_text(&run));
    assert_eq!(
        env.records("iteration.start").len(),
        2,
        "T1 and the task it discovered"
    );

    run
}

/// What every reader shows, run from a shell without the secrets in its environment (so
/// what they show comes from the journal alone), and every file under `LOOPER_HOME` but
/// the backlog's own copies. Returns them and the copies left out.
fn read_everything(env: &Rc<Env>, run: &Output) -> (Vec<(String, String)>, Vec<PathBuf>) {
    let mut readers: Vec<(String, String)> = vec![("`looper run` output".into(), output_text(run))];
    let run_id = env.records("run.start")[0]["run"]
        .as_str()
        .unwrap()
        .to_owned();
    let commands: Vec<Vec<&str>> = vec![
        vec!["tail"],
        vec!["tail", "--raw"],
        vec!["tail", "--json"],
        vec!["log"],
        vec!["log", "--json"],
        vec!["show", "1"],
        vec!["show", "1", "--json"],
        vec!["show", "2"],
        vec!["show", "2", "--json"],
        vec!["show", "T1"],
        vec!["show", "T2", "--json"],
        vec!["replay", &run_id],
        vec!["status"],
        vec!["stats"],
        vec!["report"],
    ];
    for args in &commands {
        let out = env.command(args).output().unwrap();
        assert!(
            out.status.success(),
            "looper {args:?}: {}",
            output_text(&out)
        );
        readers.push((format!("`looper {}`", args.join(" ")), output_text(&out)));
    }
    let report_html = std::fs::read_dir(env.home().join("projects"))
        .unwrap()
        .flatten()
        .map(|p| std::fs::read_to_string(p.path().join("report.html")).unwrap())
        .collect::<String>();
    assert!(
        report_html.contains("Rotate the credentials"),
        "the report shows the task"
    );
    readers.push(("report.html".into(), report_html));
    let mut files = Vec::new();
    walk(&env.home(), &mut files);
    let mut exempt = Vec::new();
    for f in files.iter().filter(|f| f.is_file()) {
        if is_backlog_copy(f) {
            exempt.push(f.clone());
            continue;
        }
        let text = String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned();
        readers.push((format!("file {}", f.display()), text));
    }
    // The prompt did carry the title and the description, redacted only on the way out.
    let prompt = env.records("prompt")[0]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        prompt.contains("Rotate the credentials [redacted]"),
        "{prompt}"
    );

    (readers, exempt)
}

#[test]
fn secrets_never_reach_the_journal_or_any_reader() {
    let env = Env::new();
    let (secrets, vars) = make_secrets();
    let run = plant_and_run(&env, &secrets, &vars);
    let (readers, exempt) = read_everything(&env, &run);
    // The secrets went through these readers, replaced.
    for (reader, text) in &readers {
        if [
            "`looper tail`",
            "`looper show 1`",
            "`looper show T1`",
            "report.html",
            "`looper run` output",
        ]
        .contains(&reader.as_str())
        {
            assert!(
                text.contains("[redacted]"),
                "{reader} shows no redaction:\n{text}"
            );
        }
    }
    let (mut trials, mut failures) = (0u64, Vec::new());
    for ((k, p), value) in &secrets {
        let needles = needles(value);
        for (reader, text) in &readers {
            trials += 1;
            if let Some(n) = needles.iter().find(|n| text.contains(n.as_str())) {
                failures.push(format!(
                    "{} ({}) leaked into {reader}: {n}",
                    KINDS[*k].name, PLACES[*p]
                ));
            }
        }
    }
    let files = readers
        .iter()
        .filter(|(r, _)| r.starts_with("file "))
        .count();
    eprintln!(
        "{} secrets x {} places x {} readers ({files} of them files; backlog copies exempt: {exempt:?})",
        KINDS.len(),
        PLACES.len(),
        readers.len(),
    );
    record(
        "security-redaction",
        &Figure {
            part: "security: secrets in env, prompts and agent output",
            trials,
            failures: failures.len() as u64,
            meaning: "one realistic secret (13 kinds: OpenAI, Anthropic, GitHub, AWS, Google, Slack, JWT bearer, *_TOKEN/*_SECRET/*_KEY values, a PEM private key) placed in one of 7 places (environment, task title, description, agent stdout, stderr, report summary, a discovered task) is looked for in one reader (`looper run`'s output, tail, log, show, replay, status, stats, report and every file under LOOPER_HOME but the backlog's own copies); a trial fails if any of it shows",
            rerun: "cargo nextest run -E 'test(security::secrets)'",
        },
    );
    assert!(
        failures.is_empty(),
        "{} leaks:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Runs `looper args` under umask 000 with `env`'s environment.
fn looper_umask0(env: &Env, args: &[&str]) -> Output {
    let pre = ["-c".into(), "umask 000; exec \"$0\" \"$@\"".into()];
    env.wrapped("sh", &pre, args).output().unwrap()
}

/// Checks every file (0600) and directory (0700) under `LOOPER_HOME`, itself included.
fn check_modes(env: &Env, after: &str, trials: &mut u64, failures: &mut Vec<String>) {
    let mut paths = vec![env.home()];
    walk(&env.home(), &mut paths);
    for p in paths {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        let want = if meta.is_dir() { 0o700 } else { 0o600 };
        *trials += 1;
        if mode != want {
            failures.push(format!(
                "after {after}: {} is {mode:o}, not {want:o}",
                p.display()
            ));
        }
    }
}

#[test]
fn journals_and_state_are_private_whatever_the_umask() {
    let env = Env::new();
    let (mut trials, mut failures) = (0, Vec::new());
    let steps: &[(&str, &[&str])] = &[
        ("`looper init`", &["init"]),
        ("`looper add`", &["add", "First task"]),
        ("`looper update`", &["update", ".tasks[0].priority = 1"]),
        (
            "`looper run`",
            &[
                "run",
                "--worker",
                "cmd:./agents/worker",
                "--reviewer",
                "cmd:./agents/reviewer",
            ],
        ),
        ("`looper report`", &["report"]),
        ("`looper stats`", &["stats"]),
    ];
    env.write_executable(
        "agents/worker",
        "#!/bin/sh\ncat > /dev/null\necho x > out.txt\necho '{\"task_id\": \"T1\", \"status\": \"done\", \"summary\": \"ok\"}'\n",
    );
    env.write_executable(
        "agents/reviewer",
        "#!/bin/sh\ncat > /dev/null\necho '{\"status\": \"reviewed\", \"summary\": \"complete\", \"new_tasks\": [], \"done\": true}'\n",
    );
    for (name, args) in steps {
        let out = looper_umask0(&env, args);
        assert!(out.status.success(), "{name}: {}", output_text(&out));
        check_modes(&env, name, &mut trials, &mut failures);
    }
    assert!(env.records("run.end").len() == 1, "the run ran");
    record(
        "security-modes",
        &Figure {
            part: "security: journal and state file modes under umask 000",
            trials,
            failures: failures.len() as u64,
            meaning: "after each of init, add, update, run, report and stats run with umask 000, one path under LOOPER_HOME (journals, last messages, locks, state, the report) is checked: files 0600, directories 0700",
            rerun: "cargo nextest run -E 'test(security::journals_and_state)'",
        },
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Task text that a shell, `printf` or a jq string would act on. `{m}` is the marker
/// directory: a `touch` that runs leaves a file there.
const NASTY: &[&str] = &[
    "$(touch {m}/PWNED-dollar)",
    "`touch {m}/PWNED-backtick`",
    "x; touch {m}/PWNED-semicolon",
    "x | touch {m}/PWNED-pipe",
    "x && touch {m}/PWNED-and",
    "x || touch {m}/PWNED-or",
    "line one\ntouch {m}/PWNED-newline\nline three",
    "quotes ' \" \\' \\\" end '$(touch {m}/PWNED-quoted)'",
    "format %s %n %x %% %99999999d",
    "${IFS}touch${IFS}{m}/PWNED-ifs",
    "> {m}/PWNED-redirect < /dev/null",
    "jq \\(.tasks | length) \") | .tasks = [] | (\" $__loc__",
    "unicode ünïcødé ✓ 🚀 \u{202e}desrever\u{202c} 中文 \u{feff}",
    "*  ?  [a-z]  ~  !!  #comment $HOME",
];

/// Task ids (no spaces: the fake worker finds its id up to the first one).
const NASTY_IDS: &[&str] = &[
    "A$(touch${IFS}{m}/PWNED-id-dollar)",
    "B`touch${IFS}{m}/PWNED-id-backtick`",
    "C;touch${IFS}{m}/PWNED-id-semicolon",
    "D|touch${IFS}{m}/PWNED-id-pipe",
    "E&&touch${IFS}{m}/PWNED-id-and",
    "F>{m}/PWNED-id-redirect",
    "G%s%n",
];

/// A hook that keeps its stdin, `$LOOPER_TASK` and argv (NUL-separated) in `hooks/<dir>/`.
const RECORDING_HOOK: &str = r#"#!/bin/sh
d="hooks/$HOOK_DIR/$$"
mkdir -p "hooks/$HOOK_DIR"
cat > "$d.stdin"
printf '%s' "$LOOPER_TASK" > "$d.env"
printf '%s\0' "$@" > "$d.argv"
"#;

/// What a recording hook kept of one call: stdin, `$LOOPER_TASK`, argv.
type HookCall = (Vec<u8>, Vec<u8>, Vec<Vec<u8>>);

fn read_records(dir: &Path) -> Vec<HookCall> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut stems: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "stdin"))
        .map(|p| p.with_extension(""))
        .collect();
    stems.sort();
    for s in stems {
        let read = |ext: &str| std::fs::read(s.with_extension(ext)).unwrap();
        let raw = read("argv");
        let args = raw
            .split(|&b| b == 0)
            .map(<[u8]>::to_vec)
            .collect::<Vec<_>>();
        out.push((read("stdin"), read("env"), args[..args.len() - 1].to_vec()));
    }
    out
}

/// The nasty project: a hand-written backlog with nasty ids, titles and descriptions, the
/// rest added through `looper add` (its jq program gets them as data too).
fn nasty_project(env: &Rc<Env>, trials: &mut u64, failures: &mut Vec<String>) {
    let markers = env.root().parent().unwrap().join("markers");
    std::fs::create_dir_all(&markers).unwrap();
    let m = markers.to_str().unwrap();
    let fill = |s: &str| s.replace("{m}", m);
    // A hand-written backlog with nasty ids, titles and descriptions...
    let mut tasks = Vec::new();
    for (i, id) in NASTY_IDS.iter().enumerate() {
        tasks.push(json!({
            "id": fill(id), "title": fill(NASTY[i]), "priority": 3, "status": "todo",
            "description": fill(NASTY[NASTY.len() - 1 - i]),
        }));
    }
    let doc = json!({"schema_version": 1, "source_files": [], "tasks": tasks});
    env.write("to-do.json", format!("{doc:#}\n"));
    // ...and the rest added through `looper add` (its jq program gets them as data too).
    for (i, nasty) in NASTY.iter().enumerate().skip(NASTY_IDS.len()) {
        let (title, description) = (fill(nasty), fill(NASTY[NASTY.len() - 1 - i]));
        let out = env
            .command(&["add", &title, "-d", &description, "--json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", output_text(&out));
        let added: Value = serde_json::from_slice(&out.stdout).unwrap();
        *trials += 1;
        if added["title"] != title.as_str() || added["description"] != description.as_str() {
            failures.push(format!(
                "`looper add` stored {added} for {title:?} / {description:?}"
            ));
        }
    }
}

/// The agent: the prompt on stdin holds each title and description byte for byte; argv
/// holds nothing of them.
fn check_prompts(env: &Env, tasks: &[Value], trials: &mut u64, failures: &mut Vec<String>) {
    let mut prompts = Vec::new();
    for i in 0..tasks.len() {
        prompts.push(std::fs::read_to_string(env.path(&format!("agents/prompts/{i}"))).unwrap());
        *trials += 1;
        if env.read(&format!("agents/prompts/{i}.argc")) != "0" {
            failures.push(format!("worker {i} got arguments"));
        }
    }
    for t in tasks {
        let (id, title, desc) = (
            t["id"].as_str().unwrap(),
            t["title"].as_str().unwrap(),
            t["description"].as_str().unwrap(),
        );
        *trials += 1;
        let header = format!("## Your task: {id} ");
        match prompts.iter().find(|p| p.contains(&header)) {
            Some(p) if p.contains(title) && p.contains(desc) => {}
            Some(p) => failures.push(format!("the prompt of {id} lacks its exact text: {p}")),
            None => failures.push(format!("no prompt for {id}")),
        }
        *trials += 1;
        if t["status"] != "done" {
            failures.push(format!("{id} is {} after the run", t["status"]));
        }
    }
}

/// The hooks: the `[hooks]` command and `LOOPER_HOOK` both write to `hooks/calls`.
fn check_hooks(env: &Env, tasks: &[Value], trials: &mut u64, failures: &mut Vec<String>) {
    let calls = read_records(&env.path("hooks/calls"));
    assert_eq!(
        calls.len(),
        2 * tasks.len(),
        "one [hooks] call and one LOOPER_HOOK call per iteration"
    );
    for t in tasks {
        let id = t["id"].as_str().unwrap();
        let mine: Vec<_> = calls
            .iter()
            .filter(|(_, e, _)| e == id.as_bytes())
            .collect();
        *trials += 1;
        if mine.len() != 2 {
            failures.push(format!(
                "{id}: {} hook calls got LOOPER_TASK exactly",
                mine.len()
            ));
            continue;
        }
        for (stdin, _, argv) in mine {
            *trials += 2;
            let event: Value = serde_json::from_slice(stdin).unwrap_or_default();
            if event["data"]["task"] != id {
                failures.push(format!(
                    "{id}: hook stdin {}",
                    String::from_utf8_lossy(stdin)
                ));
            }
            let fixed = argv.len() == 1 && argv[0] == b"$(touch nothing)";
            let legacy = argv.len() == 4 && argv[0] == id.as_bytes() && argv[1] == b"done";
            if !(fixed || legacy) {
                failures.push(format!("{id}: hook argv {argv:?}"));
            }
        }
    }
}

/// Nothing ran: no marker anywhere.
fn check_no_marker(env: &Env, trials: &mut u64, failures: &mut Vec<String>) {
    let mut everything = Vec::new();
    walk(env.root().parent().unwrap(), &mut everything);
    for name in NASTY
        .iter()
        .chain(NASTY_IDS)
        .filter_map(|s| s.split("PWNED").nth(1))
    {
        *trials += 1;
        let name = format!(
            "PWNED{}",
            name.split([')', '`', ' ', '\n', '\'']).next().unwrap()
        );
        if let Some(p) = everything
            .iter()
            .find(|p| p.file_name().is_some_and(|f| f == name.as_str()))
        {
            failures.push(format!("a command ran: {} exists", p.display()));
        }
    }
    assert!(
        everything
            .iter()
            .all(|p| !p.to_string_lossy().contains("PWNED")),
        "{everything:?}"
    );
}

#[test]
fn task_text_reaches_hooks_and_agents_only_as_data() {
    let env = Env::new();
    let (mut trials, mut failures) = (0u64, Vec::<String>::new());
    nasty_project(&env, &mut trials, &mut failures);
    env.write_executable(
        "agents/worker",
        r#"#!/bin/sh
n=$(ls agents/prompts | grep -c argc)
cat > "agents/prompts/$n"
printf '%s' "$#" > "agents/prompts/$n.argc"
id=$(sed -n 's/^## Your task: \([^ ]*\) .*/\1/p' "agents/prompts/$n" | head -1)
printf '{"task_id": "%s", "status": "done", "summary": "checked", "no_change_reason": "nothing to change"}\n' "$id"
"#,
    );
    std::fs::create_dir_all(env.path("agents/prompts")).unwrap();
    env.write_executable(
        "agents/reviewer",
        "#!/bin/sh\ncat > /dev/null\necho '{\"status\": \"reviewed\", \"summary\": \"complete\", \"new_tasks\": [], \"done\": true}'\n",
    );
    env.write_executable("hooks/record", RECORDING_HOOK);
    env.write(
        "looper.toml",
        "[roles]\nworker = \"cmd:./agents/worker\"\nreviewer = [\"cmd:./agents/reviewer\"]\n\n[hooks]\nafter_iteration = [\"./hooks/record\", \"$(touch nothing)\"]\n",
    );
    let run = env
        .command(&["run"])
        .env("LOOPER_HOOK", "./hooks/record")
        .env("HOOK_DIR", "calls")
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", output_text(&run));

    let backlog = env.read_json("to-do.json");
    let tasks: Vec<Value> = backlog["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["tags"] != json!(["project-done"]))
        .cloned()
        .collect();
    assert_eq!(tasks.len(), NASTY.len());
    check_prompts(&env, &tasks, &mut trials, &mut failures);
    check_hooks(&env, &tasks, &mut trials, &mut failures);
    check_no_marker(&env, &mut trials, &mut failures);
    record(
        "security-metacharacters",
        &Figure {
            part: "security: shell metacharacters in task text",
            trials,
            failures: failures.len() as u64,
            meaning: "titles, descriptions and ids holding `$(...)`, backticks, `;`, `|`, `&&`, newlines, quotes, `%s`, jq syntax and unicode go through `looper add`, the prompt on the worker's stdin, a [hooks] command (JSON stdin, LOOPER_TASK) and LOOPER_HOOK (argv); a trial checks one of them arrived byte for byte, or that one planted `touch` never ran",
            rerun: "cargo nextest run -E 'test(security::task_text)'",
        },
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A stand-in for every agent CLI: keeps its argv (NUL-separated) and the environment
/// Looper sets for it under `$CALLS/<name>-<role>-<pid>`, then fails without output.
const FAKE_CLI: &str = r#"#!/bin/sh
cat > /dev/null
d="$CALLS/$(basename "$0")-$LOOPER_ROLE-$$"
printf '%s\0' "$@" > "$d.argv"
printf '%s' "$OPENCODE_CONFIG_CONTENT" > "$d.opencode"
printf '%s' "$IS_SANDBOX" > "$d.is_sandbox"
exit 1
"#;

/// Words that lift a CLI's own guard rails.
const BYPASS: &[&str] = &[
    "--dangerously-bypass-approvals-and-sandbox",
    "--dangerously-skip-permissions",
    "bypassPermissions",
    "danger-full-access",
    "--yolo",
    "yolo",
    "--auto",
];

/// Why `argv` (and opencode's permission config) is not that CLI's read-only mode, if so.
fn not_read_only(cli: &str, argv: &[String], opencode: &str) -> Option<String> {
    let has = |pair: &[&str]| argv.windows(pair.len()).any(|w| w == pair);
    let ok = match cli {
        "codex" => has(&["--sandbox", "read-only"]),
        "claude" => {
            has(&["--permission-mode", "dontAsk"])
                && has(&["--tools=Read,Bash"])
                && has(&["--disallowedTools=Edit,Write,NotebookEdit"])
                && argv.iter().any(|a| {
                    a.strip_prefix("--allowedTools=").is_some_and(|tools| {
                        tools
                            .split(',')
                            .all(|t| t == "Read" || t.starts_with("Bash(git "))
                    })
                })
        }
        "gemini" => {
            has(&["--approval-mode", "plan"])
                && !argv.iter().any(|a| a.starts_with("--allowed-tools"))
        }
        "opencode" => {
            let config: Value = serde_json::from_str(opencode).unwrap_or_default();
            let p = &config["permission"];
            p["edit"] == "deny"
                && p["webfetch"] == "deny"
                && p["bash"]["*"] == "deny"
                && p["bash"].as_object().is_some_and(|rules| {
                    rules
                        .iter()
                        .all(|(k, v)| v == "deny" || k.starts_with("git "))
                })
        }
        "pi" => has(&["--tools", "read,grep,find,ls"]),
        _ => false,
    };
    (!ok).then(|| format!("{cli} reviewer argv {argv:?} (opencode config {opencode:?})"))
}

/// What a worker run with `sandbox = "none"` must carry: that CLI's bypass.
fn bypass_of(cli: &str, argv: &[String], opencode: &str, is_sandbox: &str) -> bool {
    let has = |pair: &[&str]| argv.windows(pair.len()).any(|w| w == pair);
    match cli {
        "codex" => has(&["--dangerously-bypass-approvals-and-sandbox"]),
        "claude" => has(&["--permission-mode", "bypassPermissions"]) && is_sandbox == "1",
        "gemini" => has(&["--approval-mode", "yolo"]),
        "opencode" => has(&["--auto"]) && opencode.contains(r#""edit":"allow""#),
        // pi has no permission system: nothing to lift.
        _ => true,
    }
}

/// Checks one recorded call of a fake CLI: a reviewer in its read-only mode and never
/// bypassing; a worker bypassing exactly when `sandbox = "none"`.
fn check_call(cli: &str, sandbox: Option<&str>, role: &str, p: &Path, failures: &mut Vec<String>) {
    let argv: Vec<String> = std::fs::read_to_string(p)
        .unwrap()
        .split('\0')
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect();
    let opencode = std::fs::read_to_string(p.with_extension("opencode")).unwrap();
    let is_sandbox = std::fs::read_to_string(p.with_extension("is_sandbox")).unwrap();
    let bypassing: Vec<&String> = argv
        .iter()
        .filter(|a| {
            BYPASS
                .iter()
                .any(|b| a.as_str() == *b || a.starts_with("--dangerously"))
        })
        .collect();
    if role == "reviewer" {
        if let Some(why) = not_read_only(cli, &argv, &opencode) {
            failures.push(why);
        } else if !bypassing.is_empty() || is_sandbox == "1" {
            failures.push(format!(
                "{cli} reviewer with sandbox {sandbox:?} bypasses: {argv:?}"
            ));
        }
    } else if sandbox == Some("\"none\"") {
        if !bypass_of(cli, &argv, &opencode, &is_sandbox) {
            failures.push(format!(
                "{cli} worker with sandbox none lacks its bypass: {argv:?}"
            ));
        }
    } else if !bypassing.is_empty()
        || is_sandbox == "1"
        || opencode.contains("\"webfetch\":\"allow\"")
    {
        failures.push(format!(
            "{cli} worker with sandbox {sandbox:?} bypasses: {argv:?}"
        ));
    }
}

#[test]
fn reviewers_run_read_only_and_only_a_configured_worker_bypasses() {
    let env = Env::new();
    let bin = env.root().parent().unwrap().join("fake-bin");
    std::fs::create_dir_all(&bin).unwrap();
    for cli in ["codex", "claude", "gemini", "opencode", "pi"] {
        std::fs::write(bin.join(cli), FAKE_CLI).unwrap();
        std::fs::set_permissions(bin.join(cli), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let (mut trials, mut failures) = (0u64, Vec::<String>::new());
    for (case, (cli, sandbox)) in ["codex", "claude", "gemini", "opencode", "pi"]
        .iter()
        .flat_map(|c| {
            [
                (*c, None),
                (*c, Some("\"default\"")),
                (*c, Some("\"none\"")),
            ]
        })
        .enumerate()
    {
        let calls = env.root().parent().unwrap().join(format!("calls-{case}"));
        std::fs::create_dir_all(&calls).unwrap();
        // One task: the worker fails once, the task is blocked, the review runs.
        env.write("to-do.json", crate::harness::backlog_with(1));
        env.write(
            "looper.toml",
            sandbox.map_or(String::new(), |s| format!("sandbox = {s}\n")),
        );
        let out = env
            .command(&[
                "run",
                "--worker",
                cli,
                "--reviewer",
                cli,
                "--retry-limit",
                "1",
            ])
            .env("PATH", &path)
            .env("CALLS", &calls)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(4), "{cli}: {}", output_text(&out));
        let mut roles = BTreeMap::<String, usize>::new();
        for e in std::fs::read_dir(&calls).unwrap().flatten() {
            let p = e.path();
            if p.extension().is_none_or(|x| x != "argv") {
                continue;
            }
            let name = p.file_stem().unwrap().to_str().unwrap().to_owned();
            let role = name.split('-').nth(1).unwrap().to_owned();
            *roles.entry(role.clone()).or_default() += 1;
            trials += 1;
            check_call(cli, sandbox, &role, &p, &mut failures);
        }
        assert!(
            roles.get("worker") == Some(&1) && roles.get("reviewer").is_some_and(|n| *n >= 1),
            "{cli}: calls by role {roles:?}"
        );
    }
    trials += cmd_reviewer_violation(&env, &mut failures);
    trials += doctor_warns_exactly_when_unsandboxed(&env, &mut failures);
    record(
        "security-read-only",
        &Figure {
            part: "security: read-only reviewers, no bypass unless configured",
            trials,
            failures: failures.len() as u64,
            meaning: "one agent run by `looper run` (codex, claude, gemini, opencode, pi, each with sandbox unset, \"default\" and \"none\") is checked against its CLI's read-only mode (reviewer) or bypass flags (worker: none unless sandbox = \"none\"); plus a cmd reviewer that writes (journaled as a violation) and `looper doctor` with the sandbox set in each place (warns exactly when it is \"none\")",
            rerun: "cargo nextest run -E 'test(security::reviewers)'",
        },
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A `cmd:` agent has no read-only mode: it is told its role, and a change it makes anyway
/// is journaled as a violation.
fn cmd_reviewer_violation(env: &Rc<Env>, failures: &mut Vec<String>) -> u64 {
    env.write("looper.toml", "");
    let mut doc = serde_json::from_str::<Value>(&crate::harness::backlog_with(1)).unwrap();
    doc["tasks"][0]["status"] = json!("done");
    env.write("to-do.json", format!("{doc:#}\n"));
    env.write_executable(
        "agents/writing-reviewer",
        "#!/bin/sh\ncat > /dev/null\necho \"$LOOPER_ROLE\" > written-by-reviewer.txt\necho '{\"status\": \"reviewed\", \"summary\": \"complete\", \"new_tasks\": [], \"done\": true}'\n",
    );
    let before = env.records("review.violation").len();
    let out = env
        .command(&[
            "run",
            "--worker",
            "cmd:./agents/writing-reviewer",
            "--reviewer",
            "cmd:./agents/writing-reviewer",
        ])
        .output()
        .unwrap();
    let violations = env.records("review.violation");
    if env.read("written-by-reviewer.txt") != "reviewer\n" {
        failures.push("the cmd reviewer was not told its role (LOOPER_ROLE)".into());
    }
    if violations.len() != before + 1 {
        failures.push(format!(
            "a cmd reviewer's write was not journaled as a violation ({}): {violations:?}",
            output_text(&out)
        ));
    }
    2
}

/// `looper doctor` warns about `sandbox = "none"` exactly when the effective setting is
/// "none", wherever it is set, and a warning alone does not fail it.
fn doctor_warns_exactly_when_unsandboxed(env: &Rc<Env>, failures: &mut Vec<String>) -> u64 {
    let user = env.home().join("config.toml");
    std::fs::create_dir_all(env.home()).unwrap();
    let roles = "[roles]\nworker = \"cmd:./agents/writing-reviewer\"\nreviewer = [\"cmd:./agents/writing-reviewer\"]\n";
    let cases: &[(&str, &str, bool)] = &[
        ("", "", false),
        ("", "sandbox = \"default\"\n", false),
        ("", "sandbox = \"none\"\n", true),
        ("sandbox = \"none\"\n", "", true),
        ("sandbox = \"none\"\n", "sandbox = \"default\"\n", false),
        ("sandbox = \"default\"\n", "sandbox = \"none\"\n", true),
    ];
    let mut trials = 0;
    for (user_toml, project_toml, warns) in cases {
        std::fs::write(&user, user_toml).unwrap();
        env.write("looper.toml", format!("{project_toml}{roles}"));
        let out = env.command(&["doctor"]).output().unwrap();
        let text = output_text(&out);
        let warned = text.contains("sandbox = \"none\": the worker runs without its CLI's sandbox");
        trials += 1;
        if warned != *warns || out.status.code() != Some(0) || text.contains("PROBLEM") {
            failures.push(format!(
                "doctor with user {user_toml:?} project {project_toml:?}: exit {:?}, warned {warned}:\n{text}",
                out.status.code()
            ));
        }
    }
    std::fs::write(&user, "").unwrap();
    trials
}
