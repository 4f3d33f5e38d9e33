//! `choiceboard ask`: create a choice, show its countdown, wait for the answer and print it, with
//! an exit status a shell script can branch on.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};

use crate::choice::{Mode, OnTimeout, Status};
use crate::client::{self, Client, RemoteChoice};
use crate::clock::countdown_secs;
pub use crate::clock::parse_duration;
use crate::json::request::{CreateRequest, OptionRequest};
use crate::local::ServerArgs;

/// Exit statuses: what a script branches on.
pub const EXIT_SUBMITTED: i32 = 0;
pub const EXIT_ERROR: i32 = 1;
pub const EXIT_CANCELLED: i32 = 2;
pub const EXIT_TIMED_OUT: i32 = 3;
pub const EXIT_INTERRUPTED: i32 = 130;

/// The annotation of a choice cancelled because its asker was interrupted.
pub const INTERRUPTED_ANNOTATION: &str = "cancelled by the asker";

/// How long `ask` keeps retrying when the server stops answering mid-wait (a restart).
const RECONNECT_FOR: Duration = Duration::from_secs(30);

#[derive(Args, Debug, Clone)]
pub struct AskArgs {
    /// The question, as the person sees it.
    pub title: String,
    /// Markdown shown under the title; `-` reads it from stdin.
    #[arg(long)]
    pub prompt: Option<String>,
    /// An answer to offer, `ID` or `ID=LABEL`; repeat for each.
    #[arg(long = "option", value_name = "ID[=LABEL]")]
    pub options: Vec<String>,
    /// Any number of the options (at least one).
    #[arg(long, group = "mode")]
    pub multi: bool,
    /// A free-text answer instead of options.
    #[arg(long, group = "mode")]
    pub text: bool,
    /// At most one option and a free-text answer.
    #[arg(long, group = "mode")]
    pub hybrid: bool,
    /// No question: a shared countdown that rings.
    #[arg(long, group = "mode")]
    pub timer: bool,
    /// How long the person has: `90`, `90s`, `5m`, `1h30m` (server default 5m).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Option<f64>,
    /// An option selected in advance and submitted at the deadline; repeat for more.
    #[arg(long = "default", value_name = "ID")]
    pub defaults: Vec<String>,
    /// What the deadline does (server default: submit_default).
    #[arg(long, value_enum)]
    pub on_timeout: Option<OnTimeoutArg>,
    /// Who is asking (a program or project), shown on the dashboard.
    #[arg(long, env = "CHOICEBOARD_SOURCE")]
    pub source: Option<String>,
    /// A person whose vote decides (single and multi); repeat for each. Each gets a link of
    /// their own, printed on stderr.
    #[arg(long = "approver", value_name = "NAME")]
    pub approvers: Vec<String>,
    /// How many approvers must vote the same (default: all of them).
    #[arg(long, value_name = "N")]
    pub quorum: Option<u64>,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Print the whole final choice as JSON instead of the selected ids.
    #[arg(long)]
    pub json: bool,
    /// Open the choice's page in the default browser, where there is one.
    #[arg(long)]
    pub open: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OnTimeoutArg {
    /// Submit the --default selection.
    #[value(name = "submit_default")]
    SubmitDefault,
    /// Cancel the choice.
    #[value(name = "cancel")]
    Cancel,
}

impl AskArgs {
    /// The create body these arguments describe; `prompt` is the prompt already read.
    fn request(&self, prompt: Option<String>) -> CreateRequest {
        let mode = if self.multi {
            Some(Mode::Multi)
        } else if self.text {
            Some(Mode::Text)
        } else if self.hybrid {
            Some(Mode::Hybrid)
        } else if self.timer {
            Some(Mode::Timer)
        } else {
            None
        };
        let options: Vec<OptionRequest> = self.options.iter().map(|o| parse_option(o)).collect();
        CreateRequest {
            title: self.title.clone(),
            prompt,
            mode,
            options: (!options.is_empty()).then_some(options),
            default_selection: (!self.defaults.is_empty()).then(|| self.defaults.clone()),
            on_timeout: self.on_timeout.map(|o| match o {
                OnTimeoutArg::SubmitDefault => OnTimeout::SubmitDefault,
                OnTimeoutArg::Cancel => OnTimeout::Cancel,
            }),
            timeout_seconds: self.timeout,
            source: self.source.clone(),
            approvers: (!self.approvers.is_empty()).then(|| self.approvers.clone()),
            quorum: self.quorum,
            ..CreateRequest::default()
        }
    }
}

/// `ID` or `ID=LABEL`; the id is everything before the first `=`.
fn parse_option(raw: &str) -> OptionRequest {
    let (id, label) = match raw.split_once('=') {
        Some((id, label)) => (id, Some(label.to_string())),
        None => (raw, None),
    };
    OptionRequest {
        id: id.to_string(),
        label,
        ..OptionRequest::default()
    }
}

/// Runs `choiceboard ask`; returns the exit status.
pub async fn run(args: AskArgs) -> anyhow::Result<i32> {
    // Listen for Ctrl-C before anything can be created, so no choice is ever left behind.
    let mut interrupt = Interrupt::listen()?;
    let prompt = match args.prompt.as_deref() {
        Some("-") => Some(read_stdin().await?),
        other => other.map(str::to_string),
    };
    let request = args.request(prompt);
    let (client, local) = tokio::select! {
        connected = args.server.connect() => connected?,
        _ = interrupt.recv() => return Ok(EXIT_INTERRUPTED),
    };
    let outcome = ask(&client, &request, &args, &mut interrupt).await;
    if let Some(local) = local {
        local.stop().await;
    }
    outcome
}

async fn ask(
    client: &Client,
    request: &CreateRequest,
    args: &AskArgs,
    interrupt: &mut Interrupt,
) -> anyhow::Result<i32> {
    let create = client.create(request);
    tokio::pin!(create);
    let created = tokio::select! {
        created = &mut create => created.map_err(refused)?,
        _ = interrupt.recv() => {
            // The server may have created it already: finish the request, cancel what it made.
            if let Ok(Ok(created)) = tokio::time::timeout(Duration::from_secs(5), create).await {
                cancel_on_interrupt(client, &created).await;
            }
            return Ok(EXIT_INTERRUPTED);
        }
    };
    eprintln!("choiceboard: {} — answer at {}", created.title, created.url);
    for (name, link) in &created.approver_links {
        eprintln!("choiceboard: {name} votes at {link}");
    }
    if args.open {
        open_in_browser(&created.url);
    }
    let mut countdown = Countdown::new(std::io::stderr().is_terminal());
    let mut choice = created;
    let mut failing_since: Option<Instant> = None;
    while !choice.status.is_final() {
        countdown.show(&choice);
        // On a terminal, re-read often so an extension or a pause made elsewhere shows at once;
        // otherwise one long poll at a time.
        let poll = if countdown.live { 1.0 } else { 60.0 };
        tokio::select! {
            read = client.wait(&choice.id, poll) => match read {
                Ok(now) => {
                    choice = now;
                    failing_since = None;
                }
                Err(client::Error::Unreachable(e)) => {
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > RECONNECT_FOR {
                        countdown.clear();
                        anyhow::bail!("lost the server while waiting for {}: {e}", choice.url);
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => {
                    countdown.clear();
                    return Err(anyhow::anyhow!("waiting for {}: {e}", choice.url));
                }
            },
            _ = interrupt.recv() => {
                countdown.clear();
                cancel_on_interrupt(client, &choice).await;
                return Ok(EXIT_INTERRUPTED);
            }
        }
    }
    countdown.clear();
    eprintln!("choiceboard: {}", describe_outcome(&choice));
    print_answer(&choice, args.json)?;
    Ok(match choice.status {
        Status::Submitted => EXIT_SUBMITTED,
        Status::Cancelled => EXIT_CANCELLED,
        Status::TimedOut => EXIT_TIMED_OUT,
        // The loop above ends only on a final status.
        Status::Pending | Status::Paused => EXIT_ERROR,
    })
}

/// Nobody should answer a question whose asker is gone.
async fn cancel_on_interrupt(client: &Client, choice: &RemoteChoice) {
    let cancel = client.cancel(&choice.id, INTERRUPTED_ANNOTATION);
    match tokio::time::timeout(Duration::from_secs(5), cancel).await {
        Ok(Ok(c)) if c.status == Status::Cancelled => {
            eprintln!("choiceboard: interrupted; the choice is cancelled");
        }
        Ok(Ok(c)) => eprintln!(
            "choiceboard: interrupted; the choice was already {}",
            c.status.as_str()
        ),
        Ok(Err(e)) => eprintln!("choiceboard: interrupted; cancelling the choice failed: {e}"),
        Err(_) => eprintln!("choiceboard: interrupted; the server did not confirm the cancel"),
    }
}

/// A refused create, named by the flag that caused it.
fn refused(e: client::Error) -> anyhow::Error {
    match &e {
        client::Error::Api {
            field: Some(field), ..
        } => {
            let flag = match field.split(['[', '.']).next().unwrap_or("") {
                "title" => "TITLE",
                "prompt" => "--prompt",
                "options" => "--option",
                "default_selection" => "--default",
                "timeout_seconds" => "--timeout",
                "source" => "--source",
                "on_timeout" => "--on-timeout",
                _ => "the mode flags",
            };
            anyhow::anyhow!("the server refused the choice: {e} [{flag}]")
        }
        client::Error::Api { .. } => anyhow::anyhow!("the server refused the choice: {e}"),
        _ => anyhow::anyhow!("creating the choice: {e}"),
    }
}

fn describe_outcome(choice: &RemoteChoice) -> String {
    let answer = choice.result.clone().unwrap_or_default();
    let by = answer
        .by
        .as_deref()
        .map(|by| format!(" by {by}"))
        .unwrap_or_default();
    let note = answer
        .annotation
        .as_deref()
        .filter(|a| !a.is_empty())
        .map(|a| format!(" ({a})"))
        .unwrap_or_default();
    match choice.status {
        Status::Submitted => {
            let mut parts = answer.selection.clone();
            if let Some(text) = answer.text.as_deref().filter(|t| !t.is_empty()) {
                parts.push(format!("{text:?}"));
            }
            format!("submitted{by}: {}{note}", parts.join(", "))
        }
        Status::Cancelled => format!("cancelled{by}{note}"),
        Status::TimedOut if answer.selection.is_empty() => "timed out with no selection".into(),
        Status::TimedOut => format!("timed out; default: {}", answer.selection.join(", ")),
        Status::Pending | Status::Paused => choice.status.as_str().to_string(),
    }
}

/// stdout: the selected ids one a line, then the text (text and hybrid modes); or the JSON.
fn print_answer(choice: &RemoteChoice, json: bool) -> anyhow::Result<()> {
    let mut out = String::new();
    if json {
        out.push_str(&serde_json::to_string_pretty(&choice.json)?);
        out.push('\n');
    } else if let Some(answer) = &choice.result {
        for id in &answer.selection {
            out.push_str(id);
            out.push('\n');
        }
        if let Some(text) = answer.text.as_deref().filter(|t| !t.is_empty()) {
            out.push_str(text);
            if !text.ends_with('\n') {
                out.push('\n');
            }
        }
    }
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| anyhow::anyhow!("cannot write the answer to stdout: {e}"))
}

/// The one-line countdown on stderr, when stderr is a terminal; silent otherwise.
struct Countdown {
    live: bool,
    shown: bool,
}

impl Countdown {
    fn new(live: bool) -> Countdown {
        Countdown { live, shown: false }
    }

    fn show(&mut self, choice: &RemoteChoice) {
        if !self.live {
            return;
        }
        let left = countdown_secs(choice.remaining_seconds);
        let line = match choice.status {
            Status::Paused => format!("⏸ paused, {left} left · {}", short(&choice.title)),
            _ => format!("⏳ {left} left · {}", short(&choice.title)),
        };
        // Carriage return and "erase line": redraw in place.
        eprint!("\r\x1b[2K{line}");
        let _ = std::io::stderr().flush();
        self.shown = true;
    }

    fn clear(&mut self) {
        if self.shown {
            eprint!("\r\x1b[2K");
            let _ = std::io::stderr().flush();
            self.shown = false;
        }
    }
}

/// A title cut to fit one terminal line next to the countdown.
fn short(title: &str) -> String {
    const MAX: usize = 50;
    if title.chars().count() <= MAX {
        title.to_string()
    } else {
        let cut: String = title.chars().take(MAX - 1).collect();
        format!("{cut}…")
    }
}

async fn read_stdin() -> anyhow::Result<String> {
    use tokio::io::AsyncReadExt;
    let mut prompt = String::new();
    tokio::io::stdin()
        .read_to_string(&mut prompt)
        .await
        .map_err(|e| anyhow::anyhow!("--prompt -: cannot read stdin: {e}"))?;
    Ok(prompt)
}

/// Opens `url` with the platform's opener, where one exists; never fails.
fn open_in_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else {
        "xdg-open"
    };
    let spawned = tokio::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if spawned.is_err() {
        eprintln!("choiceboard: no browser to open here ({opener} is missing); open {url}");
    }
}

/// Ctrl-C (SIGINT), listened for from the start so the handler is in place before a choice exists.
struct Interrupt {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
}

impl Interrupt {
    fn listen() -> anyhow::Result<Interrupt> {
        Ok(Interrupt {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
                .map_err(|e| anyhow::anyhow!("cannot listen for Ctrl-C: {e}"))?,
        })
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            if self.signal.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("90"), Ok(90.0));
        assert_eq!(parse_duration("90s"), Ok(90.0));
        assert_eq!(parse_duration("5m"), Ok(300.0));
        assert_eq!(parse_duration("1h30m"), Ok(5400.0));
        assert_eq!(parse_duration("1h30m15s"), Ok(5415.0));
        assert_eq!(parse_duration("1.5h"), Ok(5400.0));
        assert_eq!(parse_duration("0.5"), Ok(0.5));
        for bad in [
            "", "m", "5x", "30m1h", "1m1m", "-5", "5m30", "inf", "NaN", "1..2s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn options_split_at_the_first_equals_sign() {
        let o = parse_option("yes=Ship it = now");
        assert_eq!(
            (o.id.as_str(), o.label.as_deref()),
            ("yes", Some("Ship it = now"))
        );
        let o = parse_option("no");
        assert_eq!((o.id.as_str(), o.label), ("no", None));
    }
}
