//! Capturing what the stack reports to `tracing`: a subscriber layer recording every span (with
//! its parent and fields) and event, and a scripted upstream to report on.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tower::service_fn;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

// ---- Capturing spans and events ------------------------------------------------------------------

pub type Fields = BTreeMap<String, String>;

#[derive(Debug, Clone)]
pub struct SpanRecord {
    pub name: &'static str,
    pub level: Level,
    /// The index of the parent span in the log.
    pub parent: Option<usize>,
    pub fields: Fields,
}

#[derive(Debug, Clone)]
pub struct EventRecord {
    pub level: Level,
    pub target: String,
    /// The index of the span current when the event was made.
    pub span: Option<usize>,
    pub fields: Fields,
}

#[derive(Default)]
pub struct Log {
    spans: Vec<SpanRecord>,
    events: Vec<EventRecord>,
    /// Open spans' ids to their index (the registry reuses the ids of closed spans).
    open: HashMap<u64, usize>,
}

#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Log>>);

struct Visitor<'a>(&'a mut Fields);

impl Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::new();
        attrs.record(&mut Visitor(&mut fields));
        let parent_id = ctx
            .span(id)
            .and_then(|span| span.parent().map(|parent| parent.id().into_u64()));
        let mut log = self.0.lock().unwrap();
        let parent = parent_id.and_then(|p| log.open.get(&p).copied());
        let index = log.spans.len();
        log.spans.push(SpanRecord {
            name: attrs.metadata().name(),
            level: *attrs.metadata().level(),
            parent,
            fields,
        });
        log.open.insert(id.into_u64(), index);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        let mut log = self.0.lock().unwrap();
        if let Some(&index) = log.open.get(&id.into_u64()) {
            values.record(&mut Visitor(&mut log.spans[index].fields));
        }
    }

    fn on_close(&self, id: Id, _ctx: Context<'_, S>) {
        self.0.lock().unwrap().open.remove(&id.into_u64());
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::new();
        event.record(&mut Visitor(&mut fields));
        let current = ctx.lookup_current().map(|span| span.id().into_u64());
        let mut log = self.0.lock().unwrap();
        let span = current.and_then(|id| log.open.get(&id).copied());
        log.events.push(EventRecord {
            level: *event.metadata().level(),
            target: event.metadata().target().to_owned(),
            span,
            fields,
        });
    }
}

impl Capture {
    /// Installs the capture as this thread's subscriber until the guard drops.
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        tracing::subscriber::set_default(tracing_subscriber::registry().with(self.clone()))
    }

    pub fn spans(&self) -> Vec<SpanRecord> {
        self.0.lock().unwrap().spans.clone()
    }

    /// This crate's events (not those of hyper or tower-http).
    pub fn events(&self) -> Vec<EventRecord> {
        let log = self.0.lock().unwrap();
        log.events
            .iter()
            .filter(|e| e.target.starts_with("http_resilience"))
            .cloned()
            .collect()
    }

    pub fn index_of(&self, name: &str) -> Vec<usize> {
        let log = self.0.lock().unwrap();
        (0..log.spans.len())
            .filter(|&i| log.spans[i].name == name)
            .collect()
    }

    /// Everything captured, as text, to look for secrets in.
    pub fn text(&self) -> String {
        let log = self.0.lock().unwrap();
        format!("{:?}{:?}", log.spans, log.events)
    }
}

// ---- A scripted upstream ---------------------------------------------------------------------------

pub type Answer = (u16, &'static [(&'static str, &'static str)], &'static str);

/// Answers each path from its script, one entry per call, repeating the last.
pub fn scripted(
    scripts: &[(&'static str, &'static [Answer])],
) -> impl tower::Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
       + Send {
    let scripts: HashMap<&'static str, Mutex<VecDeque<Answer>>> = scripts
        .iter()
        .map(|(path, answers)| (*path, Mutex::new(answers.iter().copied().collect())))
        .collect();
    let scripts = Arc::new(scripts);
    service_fn(move |request: Request<Full<Bytes>>| {
        let scripts = Arc::clone(&scripts);
        async move {
            let script = scripts
                .get(request.uri().path())
                .unwrap_or_else(|| panic!("no script for {}", request.uri()));
            let (status, headers, body) = {
                let mut script = script.lock().unwrap();
                if script.len() > 1 {
                    script.pop_front().unwrap()
                } else {
                    script[0]
                }
            };
            let mut response = Response::builder().status(status);
            for (name, value) in headers {
                response = response.header(*name, *value);
            }
            Ok::<_, Infallible>(
                response
                    .body(Full::new(Bytes::from_static(body.as_bytes())))
                    .unwrap(),
            )
        }
    })
}

pub const JSON: (&str, &str) = ("content-type", "application/json");
pub const API_KEY: &str = "sk-live-0123456789abcdefSECRET";
pub const BEARER: &str = "Bearer sk-proj-abcdefghijklmnopSECRET";

pub fn post(path: &str) -> Request<Full<Bytes>> {
    Request::post(format!("https://api.example.com{path}?api_key={API_KEY}"))
        .header("authorization", BEARER)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(br#"{"prompt":"a cat"}"#)))
        .unwrap()
}

pub fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(format!("https://api.example.com{path}"))
        .header("authorization", BEARER)
        .body(Full::default())
        .unwrap()
}
