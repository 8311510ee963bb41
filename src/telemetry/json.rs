//! The JSON log line, written straight into one buffer.
//!
//! The shape is tracing-subscriber's `json()` with `flatten_event(true)`,
//! `with_current_span(true)` and no span list — `{"timestamp", "level",
//! <event fields>, "target", "span": {<span fields>, "name"}}` — so log
//! pipelines and `tests/api/process.rs` read it unchanged (a test below
//! compares both formatters on the same events). What differs is the cost:
//! the stock formatter re-parses the span's stored fields into a map for
//! every line and converts each JSON fragment back to `str`; it was a third
//! of the instructions of an empty request (`bench/README.md`, profile).
//! Here a span's fields are kept as the `"key":value` pairs of a JSON object
//! without its braces: recording one more field appends, and a line splices
//! them in as they are.

use std::fmt;

use serde::Serializer as _;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The event formatter of `PORTCULLIS_LOG_FORMAT=json`.
pub struct JsonLine;

/// The span-field formatter that goes with [`JsonLine`].
pub struct JsonSpanFields;

/// Appends `"name":value` pairs to a buffer, a comma before all but the first.
struct Pairs<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Pairs<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        let first = out.is_empty() || out.ends_with(b"{");
        Self { out, first }
    }

    fn key(&mut self, name: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        json_str(self.out, name);
        self.out.push(b':');
    }

    fn value<T: serde::Serialize + ?Sized>(&mut self, name: &str, v: &T) {
        self.key(name);
        // Writing into a Vec cannot fail; a value that cannot be
        // serialized (none of the field types here) becomes null.
        if serde_json::to_writer(&mut *self.out, v).is_err() {
            self.out.extend_from_slice(b"null");
        }
    }

    fn display(&mut self, name: &str, v: &dyn fmt::Display) {
        self.key(name);
        // Escapes the pieces as they are formatted: no intermediate String.
        if serde_json::Serializer::new(&mut *self.out)
            .collect_str(v)
            .is_err()
        {
            self.out.extend_from_slice(b"null");
        }
    }
}

/// A JSON string literal of `s`, escaped by serde_json.
fn json_str(out: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Fields a `log` record carries for tracing-log: its target and place are
/// already in the normalized metadata.
fn is_log_meta(name: &str) -> bool {
    name.starts_with("log.")
}

impl Visit for Pairs<'_> {
    fn record_f64(&mut self, f: &Field, v: f64) {
        self.value(f.name(), &v);
    }
    fn record_i64(&mut self, f: &Field, v: i64) {
        self.value(f.name(), &v);
    }
    fn record_u64(&mut self, f: &Field, v: u64) {
        self.value(f.name(), &v);
    }
    // As tracing-serde writes them: a string (most JSON readers lose
    // precision past 2^53).
    fn record_i128(&mut self, f: &Field, v: i128) {
        self.display(f.name(), &v);
    }
    fn record_u128(&mut self, f: &Field, v: u128) {
        self.display(f.name(), &v);
    }
    fn record_bool(&mut self, f: &Field, v: bool) {
        self.value(f.name(), &v);
    }
    fn record_str(&mut self, f: &Field, v: &str) {
        if !is_log_meta(f.name()) {
            self.value(f.name(), v);
        }
    }
    fn record_error(&mut self, f: &Field, v: &(dyn std::error::Error + 'static)) {
        self.display(f.name(), &v);
    }
    fn record_debug(&mut self, f: &Field, v: &dyn fmt::Debug) {
        if !is_log_meta(f.name()) {
            self.display(f.name(), &format_args!("{v:?}"));
        }
    }
}

/// `Writer` is a `fmt::Write`; the buffer holds only what serde_json wrote
/// (valid UTF-8), so the conversion never fails.
fn put(writer: &mut Writer<'_>, buf: &[u8]) -> fmt::Result {
    writer.write_str(std::str::from_utf8(buf).map_err(|_| fmt::Error)?)
}

impl<'writer> FormatFields<'writer> for JsonSpanFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut buf = Vec::with_capacity(128);
        fields.record(&mut Pairs::new(&mut buf));
        put(&mut writer, &buf)
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut buf = Vec::with_capacity(64);
        let mut pairs = Pairs::new(&mut buf);
        pairs.first = current.fields.is_empty();
        fields.record(&mut pairs);
        current
            .fields
            .push_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?);
        Ok(())
    }
}

impl<S> FormatEvent<S, JsonSpanFields> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonSpanFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let mut timestamp = String::with_capacity(32);
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;

        let mut buf = Vec::with_capacity(384);
        buf.push(b'{');
        let mut pairs = Pairs::new(&mut buf);
        pairs.value("timestamp", timestamp.as_str());
        pairs.value("level", meta.level().as_str());
        event.record(&mut pairs);
        pairs.value("target", meta.target());

        let span = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current());
        if let Some(span) = span {
            pairs.key("span");
            buf.push(b'{');
            let ext = span.extensions();
            let stored = ext
                .get::<FormattedFields<JsonSpanFields>>()
                .map_or("", |f| f.fields.as_str());
            buf.extend_from_slice(stored.as_bytes());
            let mut pairs = Pairs::new(&mut buf);
            pairs.value("name", span.metadata().name());
            buf.push(b'}');
        }
        buf.extend_from_slice(b"}\n");
        put(&mut writer, &buf)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use serde_json::Value;
    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Sink {
        type Writer = Sink;
        fn make_writer(&'a self) -> Sink {
            self.clone()
        }
    }

    /// Spans and events like the service's, with values that need escaping.
    fn journey() {
        let weird = "quote \" backslash \\ newline \n tab \t bell \u{7} é 🦀";
        tracing::info!(count = 3, "before any span");
        let span = tracing::info_span!(
            "request",
            request_id = %"0f0e-1",
            method = %"GET",
            path = weird,
            user_id = tracing::field::Empty,
        );
        span.in_scope(|| {
            tracing::info!(status = 200u16, latency_ms = 0.25f64, ok = true, "request");
        });
        span.record("user_id", "u-42");
        span.in_scope(|| {
            let err = std::io::Error::other("disk \"full\"");
            tracing::warn!(
                error = &err as &dyn std::error::Error,
                big = u128::MAX,
                neg = -7i64,
                "second"
            );
            tracing::error!(detail = ?Some("dbg"), nan = f64::NAN, "third {}", weird);
        });
        let empty = tracing::info_span!("empty");
        empty.in_scope(|| tracing::info!("in a span without fields"));
    }

    fn lines(sink: &Sink) -> Vec<Value> {
        let bytes = sink.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    #[test]
    fn lines_match_the_stock_json_formatter() {
        let ours = Sink::default();
        let sub = tracing_subscriber::fmt()
            .with_writer(ours.clone())
            .fmt_fields(JsonSpanFields)
            .event_format(JsonLine)
            .finish();
        tracing::subscriber::with_default(sub, journey);

        let stock = Sink::default();
        let sub = tracing_subscriber::fmt()
            .with_writer(stock.clone())
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .finish();
        tracing::subscriber::with_default(sub, journey);

        let (mut ours, mut stock) = (lines(&ours), lines(&stock));
        assert_eq!(ours.len(), 5);
        for (a, b) in ours.iter_mut().zip(stock.iter_mut()) {
            let ts = a["timestamp"].as_str().unwrap().to_owned();
            assert!(
                time::OffsetDateTime::parse(&ts, &time::format_description::well_known::Rfc3339)
                    .is_ok(),
                "{ts}"
            );
            a["timestamp"] = Value::Null;
            b["timestamp"] = Value::Null;
        }
        assert_eq!(ours, stock);
        assert_eq!(ours[1]["span"]["name"], "request");
        assert_eq!(ours[2]["span"]["user_id"], "u-42");
        assert!(ours[0].get("span").is_none());
    }
}
