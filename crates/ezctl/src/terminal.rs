//! Reading a password from the terminal (the library never touches it).

/// Read a line from the terminal without echoing it.
pub fn ask_terminal(prompt: &str) -> std::io::Result<String> {
    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
    use std::io::{BufRead, Write};
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")?;
    let mut w = &tty;
    w.write_all(prompt.as_bytes())?;
    w.flush()?;
    let before = tcgetattr(&tty)?;
    let mut quiet = before.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    tcsetattr(&tty, OptionalActions::Flush, &quiet)?;
    let mut line = String::new();
    let read = std::io::BufReader::new(&tty).read_line(&mut line);
    tcsetattr(&tty, OptionalActions::Flush, &before)?;
    w.write_all(b"\n")?;
    read?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
