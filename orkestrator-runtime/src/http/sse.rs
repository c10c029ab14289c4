//! A Server-Sent Events decoder: bytes in, whole messages out (the parts of the
//! [WHATWG format](https://html.spec.whatwg.org/multipage/server-sent-events.html) the manager
//! sends: `id`, `event`, `data`, comments).

/// One decoded message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseMessage {
    /// The `event:` name (`message` when none was given).
    pub event: String,
    /// The `id:` field, if any.
    pub id: Option<String>,
    /// The `data:` lines, joined with newlines.
    pub data: String,
}

/// Decodes a byte stream into messages; feed it chunks as they arrive.
#[derive(Debug, Default)]
pub struct SseDecoder {
    buf: Vec<u8>,
    current: SseMessage,
    has_data: bool,
}

/// The longest line the decoder holds while waiting for its end.
const MAX_LINE: usize = 16 << 20;

impl SseDecoder {
    /// A decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one chunk; returns the messages it completed. Errs when one line grows past 16 MiB.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<SseMessage>, String> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(nl) = self.buf[start..].iter().position(|b| *b == b'\n') {
            let end = start + nl;
            let mut line = &self.buf[start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let line = String::from_utf8_lossy(line).into_owned();
            start = end + 1;
            if let Some(m) = self.line(&line) {
                out.push(m);
            }
        }
        self.buf.drain(..start);
        if self.buf.len() > MAX_LINE {
            return Err("an event stream line is longer than 16 MiB".into());
        }
        Ok(out)
    }

    fn line(&mut self, line: &str) -> Option<SseMessage> {
        if line.is_empty() {
            if !self.has_data {
                self.current = SseMessage::default();
                return None;
            }
            let mut m = std::mem::take(&mut self.current);
            self.has_data = false;
            if m.event.is_empty() {
                m.event = "message".into();
            }
            return Some(m);
        }
        if line.starts_with(':') {
            return None; // a comment (keep-alive)
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.current.event = value.to_owned(),
            "id" => self.current.id = Some(value.to_owned()),
            "data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_messages_split_across_chunks() {
        let mut d = SseDecoder::new();
        let mut got = d.feed(b": keep-alive\n\nid: 3.0\nda").unwrap();
        assert!(got.is_empty());
        got.extend(
            d.feed(b"ta: {\"a\":1}\n\nevent: reset\r\nid: 4.1\r\n")
                .unwrap(),
        );
        got.extend(d.feed(b"data: x\r\ndata: y\r\n\r\n").unwrap());
        assert_eq!(
            got,
            vec![
                SseMessage {
                    event: "message".into(),
                    id: Some("3.0".into()),
                    data: "{\"a\":1}".into()
                },
                SseMessage {
                    event: "reset".into(),
                    id: Some("4.1".into()),
                    data: "x\ny".into()
                },
            ]
        );
    }
}
