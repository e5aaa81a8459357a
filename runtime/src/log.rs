//! `--log FILE --log-format text|json --debug`: the log file clients read (containerd's shim reads the last
//! `"level":"error"` object of `log.json`), with errors always echoed to stderr too (conmon forwards only stderr).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Level {
    Debug,
    Warn,
    Error,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Warn => "warning",
            Level::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

struct Logger {
    file: Option<PathBuf>,
    format: Format,
    debug: bool,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

pub fn init(file: Option<PathBuf>, format: Format, debug: bool) {
    let _ = LOGGER.set(Logger {
        file,
        format,
        debug,
    });
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

fn line(format: Format, level: Level, msg: &str) -> String {
    match format {
        Format::Json => {
            let obj =
                serde_json::json!({ "level": level.name(), "msg": msg, "time": now_rfc3339() });
            format!("{obj}\n")
        }
        Format::Text => format!(
            "time=\"{}\" level={} msg={:?}\n",
            now_rfc3339(),
            level.name(),
            msg
        ),
    }
}

pub fn log(level: Level, msg: &str) {
    let Some(l) = LOGGER.get() else {
        if level >= Level::Warn {
            eprintln!("gruntime: {msg}");
        }
        return;
    };
    if level == Level::Debug && !l.debug {
        return;
    }
    match &l.file {
        Some(path) => {
            // A log file that cannot be opened must not hide the message itself.
            let written = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| f.write_all(line(l.format, level, msg).as_bytes()));
            if level >= Level::Warn || written.is_err() {
                eprintln!("gruntime: {msg}");
            }
        }
        None => {
            if level >= Level::Warn || l.debug {
                let _ = std::io::stderr().write_all(line(l.format, level, msg).as_bytes());
            }
        }
    }
}

pub fn debug(msg: &str) {
    log(Level::Debug, msg)
}

pub fn warn(msg: &str) {
    log(Level::Warn, msg)
}

pub fn error(msg: &str) {
    log(Level::Error, msg)
}
