//! The manager's web dashboard: its files and headers over plain HTTP, and the page itself in
//! headless Chromium driven over WebDriver (`chromedriver`, via fantoccini).
//!
//! The browser tests need `chromium` and `chromedriver` on `PATH` (or `ORKESTRATOR_CHROMIUM` /
//! `ORKESTRATOR_CHROMEDRIVER`); without them they print a SKIP line and pass, unless `CI=true`
//! or `ORKESTRATOR_REQUIRE_BROWSER=1`. The test with a worker needs Docker too.
//!
//! `ORKESTRATOR_UPDATE_SCREENSHOT=1` makes the worker test save its screenshot as
//! `docs/dashboard.png` (the README shows it).

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{Cluster, FOREVER, IMAGE, docker_or_skip, free_port, http, unique};
use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

/// One browser at a time: two Chromiums on two cores make the timings meaningless.
static BROWSER: Mutex<()> = Mutex::new(());

/// How long to wait for the page to show something.
const PAGE_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Plain HTTP: what the manager serves

#[test]
fn dashboard_files_have_types_and_a_strict_csp() {
    let c = Cluster::start_server("dash-files", &[]);
    let get = |path: &str| http(c.port, "GET", path, None, b"").expect(path);

    let page = get("/");
    assert_eq!(page.status, 200, "{}", page.text());
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = page
        .header("content-security-policy")
        .expect("a CSP header");
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
    ] {
        assert!(csp.contains(part), "CSP {csp:?} lacks {part:?}");
    }
    assert!(
        !csp.contains("unsafe"),
        "CSP {csp:?} allows something unsafe"
    );
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    let html = page.text();
    assert!(
        html.contains(r#"<script src="/ui/app.js" defer></script>"#),
        "{html}"
    );
    // No inline script: every <script> tag loads a file.
    for tag in html.match_indices("<script").map(|(i, _)| &html[i..]) {
        let end = tag.find('>').expect("a closed tag");
        assert!(tag[..end].contains(" src="), "inline script in {html}");
    }
    assert!(
        !has_event_attribute(&html),
        "inline event handler attribute in {html}"
    );

    let js = get("/ui/app.js");
    assert_eq!(js.status, 200);
    assert_eq!(
        js.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(js.header("content-security-policy").is_some());
    let code = js.text();
    for sink in [
        ".innerHTML",
        ".outerHTML",
        "insertAdjacentHTML",
        "document.write",
    ] {
        assert!(!code.contains(sink), "app.js uses {sink}");
    }
    assert!(
        code.contains("new EventSource"),
        "app.js follows no event stream"
    );

    let css = get("/ui/style.css");
    assert_eq!(css.status, 200);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    assert!(css.text().contains(".jobs"));
    let icon = get("/ui/icon.svg");
    assert_eq!(icon.status, 200);
    assert_eq!(icon.header("content-type"), Some("image/svg+xml"));

    // Other paths keep the API's JSON 404.
    for path in ["/ui/nope.js", "/index.html", "/v2/jobs"] {
        let r = get(path);
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.json()["code"], "no_route", "{path}: {}", r.text());
    }
    let r = http(c.port, "POST", "/", None, b"").expect("POST /");
    assert_eq!(r.status, 405, "{}", r.text());
}

// ---------------------------------------------------------------------------------------------
// The page in a browser

#[test]
fn dashboard_lists_follows_events_escapes_and_paints_1000_jobs_fast() {
    let test = "dash-browser";
    let Some(tools) = browser_or_skip(test) else {
        return;
    };
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let c = Cluster::start_server(test, &[]);
    let first = unique("first", test);
    submit(c.port, &job_spec(&first, FOREVER, json!({})));

    let b = Browser::start(&tools);
    b.goto(&format!("{}/", c.addr));
    b.wait_ready();
    // Without workers the job waits for a placement, and the row says so.
    b.wait_js(
        "the first job is listed as Pending",
        &row_phase_is(&first, "Pending"),
    );
    let reason = b.js(&format!(
        "return document.querySelector({}).textContent",
        json!(format!("tr[data-job=\"{first}\"] td.reason"))
    ));
    assert!(
        !reason.as_str().unwrap_or_default().is_empty(),
        "a pending job shows why: {reason}"
    );
    b.js("window.__sameDocument = true; return true");

    // Changes appear without a reload: a stop, and a job submitted while the page is open.
    let r = http(c.port, "POST", &format!("/v1/jobs/{first}/stop"), None, b"").expect("stop");
    assert_eq!(r.status, 200, "{}", r.text());
    b.wait_js(
        "the stopped job's row shows Stopped",
        &row_phase_is(&first, "Stopped"),
    );
    b.wait_js(
        "the events panel shows the stop",
        &format!(
            "return [...document.querySelectorAll('#events li[data-type=job_stopped]')]
               .some(li => li.textContent.includes({}))",
            json!(first)
        ),
    );
    let second = unique("second", test);
    submit(c.port, &job_spec(&second, FOREVER, json!({})));
    b.wait_js(
        "a job submitted later appears",
        &row_phase_is(&second, "Pending"),
    );

    // Markup from a job file is shown as text: no element made of it, no script run.
    let evil = unique("evil", test);
    let payload = "<img src=x onerror=alert(1)>";
    let env_payload = "<b>bold</b><script>alert(2)</script>";
    submit(
        c.port,
        &job_spec(
            &evil,
            &json!(["sh", "-c", format!("echo {payload}")]).to_string(),
            json!({ "NOTE": env_payload }),
        ),
    );
    b.wait_js(
        "the job with markup appears",
        &row_phase_is(&evil, "Pending"),
    );
    b.js(&format!(
        "document.querySelector({}).click(); return true",
        json!(format!("tr[data-job=\"{evil}\"] button.toggle"))
    ));
    let detail = json!(format!("tr[data-detail=\"{evil}\"]"));
    let text = b.wait_js(
        "the expanded job shows its command and env",
        &format!(
            "const d = document.querySelector({detail});
             return d && d.textContent.includes('NOTE=') ? d.textContent : null"
        ),
    );
    let text = text.as_str().unwrap_or_default();
    assert!(text.contains(payload), "command not shown as text: {text}");
    assert!(
        text.contains(env_payload),
        "env value not shown as text: {text}"
    );
    let made = b.js(&format!(
        "const d = document.querySelector({detail});
         return {{ img: document.querySelectorAll('img').length,
                  bold: d.querySelectorAll('b').length,
                  scripts: document.querySelectorAll('script').length }}"
    ));
    assert_eq!(
        made,
        json!({ "img": 0, "bold": 0, "scripts": 1 }),
        "elements were made from job data"
    );
    assert!(
        b.alert_text().is_none(),
        "an alert fired: {:?}",
        b.alert_text()
    );
    assert_eq!(b.js("return window.__sameDocument === true"), json!(true));

    // The manager restarts: the page reconnects by itself and goes on following.
    c.restart_manager();
    let third = unique("third", test);
    submit(c.port, &job_spec(&third, FOREVER, json!({})));
    b.wait_js(
        "a job submitted after a manager restart appears",
        &row_phase_is(&third, "Pending"),
    );
    b.wait_js(
        "the event stream is live again",
        "return document.getElementById('conn').dataset.state === 'live'",
    );
    assert_eq!(b.js("return window.__sameDocument === true"), json!(true));

    // 1,000 jobs: a fresh load paints the whole table within a second.
    let bulk: Vec<String> = (0..1000).map(|i| format!("bulk-{i:04}")).collect();
    let started = Instant::now();
    std::thread::scope(|s| {
        for chunk in bulk.chunks(63) {
            let port = c.port;
            s.spawn(move || {
                for name in chunk {
                    submit(port, &job_spec(name, FOREVER, json!({})));
                }
            });
        }
    });
    eprintln!("submitted {} jobs in {:?}", bulk.len(), started.elapsed());
    let total = bulk.len() + 4;
    // The open page catches up with the burst by itself (it lists again past 50 changed jobs).
    b.wait_js(
        "the open page counts every job",
        &format!("return document.getElementById('jobs-count').textContent === '({total})'"),
    );
    b.goto(&format!("{}/", c.addr));
    b.wait_ready();
    b.wait_js(
        "every job has a row",
        &format!("return document.querySelectorAll('tr.job').length === {total}"),
    );
    let m = b.js(
        "const mark = (n) => { const e = performance.getEntriesByName(n)[0]; return e ? e.startTime : null; };
         const paint = (n) => { const e = performance.getEntriesByType('paint').find(p => p.name === n);
                                return e ? e.startTime : null; };
         return { rendered: mark('orkestrator:jobs-rendered'), painted: mark('orkestrator:jobs-painted'),
                  all_rows: mark('orkestrator:jobs-all-rows'),
                  fcp: paint('first-contentful-paint'), rows: document.querySelectorAll('tr.job').length,
                  count: document.getElementById('jobs-count').textContent,
                  navigation: (({ requestStart, responseStart, responseEnd, domInteractive }) =>
                    ({ requestStart, responseStart, responseEnd, domInteractive }))(performance.getEntriesByType('navigation')[0]),
                  marks: performance.getEntriesByType('mark').map(e => e.name + '@' + Math.round(e.startTime)),
                  fetches: performance.getEntriesByType('resource').map(e => e.name.replace(/^https?:..[^/]+/, '') + ' ' + Math.round(e.startTime) + '+' + Math.round(e.duration)) }",
    );
    eprintln!("dashboard with {total} jobs: {m}");
    assert_eq!(m["rows"], json!(total), "every job has a row: {m}");
    assert_eq!(m["count"], json!(format!("({total})")), "{m}");
    let painted = m["painted"].as_f64().expect("the jobs-painted mark");
    let all_rows = m["all_rows"].as_f64().expect("the jobs-all-rows mark");
    let fcp = m["fcp"].as_f64().expect("a first-contentful-paint entry");
    println!(
        "FIRST PAINT with {total} jobs (ms after navigation): first contentful paint {fcp:.0}, \
         job table painted {painted:.0}, all {total} rows in the page {all_rows:.0}"
    );
    assert!(
        painted < 1000.0,
        "the job table took {painted:.0} ms (> 1 s) to paint: {m}"
    );

    // The filter narrows the table without asking the manager again.
    b.js("const f = document.getElementById('filter');
          f.value = 'bulk-09'; f.dispatchEvent(new Event('input')); return true");
    b.wait_js(
        "the filter keeps bulk-0900 to bulk-0999",
        &format!(
            "return document.querySelectorAll('tr.job').length === 100
               && document.getElementById('jobs-count').textContent === '(100 of {total})'"
        ),
    );
    b.close();
}

#[test]
fn dashboard_shows_workers_and_running_tasks() {
    let test = "dash-worker";
    let Some(tools) = browser_or_skip(test) else {
        return;
    };
    if !docker_or_skip(test) {
        return;
    }
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let mut c = Cluster::start(test);
    let worker = c.add_worker(&[
        "--cpu",
        "2",
        "--memory",
        "2Gi",
        "--label",
        "zone=lab-1",
        "--metrics-interval",
        "1s",
    ]);
    let b = Browser::start(&tools);
    b.goto(&format!("{}/", c.addr));
    b.wait_ready();
    b.wait_js(
        "the worker's card shows it Ready with capacity bars",
        &format!(
            "const w = document.querySelector({});
             return !!w && w.textContent.includes('Ready') && w.querySelectorAll('.bar').length === 3",
            json!(format!("[data-worker=\"{worker}\"]"))
        ),
    );

    // Submitted while the page is open: placed and running without a reload.
    let web = "web";
    let mut spec = job_spec(web, FOREVER, json!({ "MODE": "serve" }));
    spec["count"] = json!(2);
    spec["tasks"][0]["resources"] = json!({ "cpu": "500m", "memory": "256Mi" });
    submit(c.port, &spec);
    let mut api = job_spec("api", FOREVER, json!({}));
    api["tasks"][0]["resources"] = json!({ "cpu": "250m", "memory": "128Mi" });
    submit(c.port, &api);
    let mut big = job_spec("too-big", FOREVER, json!({}));
    big["tasks"][0]["resources"] = json!({ "cpu": "8", "memory": "64Gi" });
    submit(c.port, &big);
    submit(
        c.port,
        &job_spec("batch", r#"["sh", "-c", "echo done"]"#, json!({})),
    );
    b.wait_js("web is Running", &row_phase_is(web, "Running"));
    b.wait_js("api is Running", &row_phase_is("api", "Running"));
    b.wait_js("batch is Completed", &row_phase_is("batch", "Completed"));
    b.wait_js(
        "too-big is Pending with a reason",
        "const r = document.querySelector('tr[data-job=\"too-big\"] td.reason');
         return !!r && r.textContent.length > 0",
    );
    b.wait_js(
        "the worker's CPU bar shows what is reserved",
        &format!(
            "const w = document.querySelector({});
             const r = w && w.querySelector('.bar .reserved');
             return !!r && parseFloat(r.style.width) > 0",
            json!(format!("[data-worker=\"{worker}\"]"))
        ),
    );
    b.js("document.querySelector('tr[data-job=\"web\"] button.toggle').click(); return true");
    b.wait_js(
        "web's details list both instances running",
        "const d = document.querySelector('tr[data-detail=\"web\"]');
         return !!d && [...d.querySelectorAll('tbody tr')].filter(r => r.textContent.includes('Running')).length === 2",
    );
    b.wait_js(
        "web's tasks show CPU and memory sparklines from the metrics window",
        "const d = document.querySelector('tr[data-detail=\"web\"]');
         return !!d && d.querySelectorAll('.spark.cpu svg').length === 2
           && d.querySelectorAll('.spark.mem svg').length === 2",
    );
    b.wait_js(
        "the worker's bars show what its tasks use, measured",
        &format!(
            "const w = document.querySelector({});
             return !!w && w.querySelectorAll('.bar .used').length === 2
               && w.textContent.includes('tasks use')
               && w.querySelectorAll('.sparks svg').length === 2",
            json!(format!("[data-worker=\"{worker}\"]"))
        ),
    );
    b.wait_js(
        "the header counts the jobs by phase",
        "return document.getElementById('counts').textContent.includes('2 running · 1 completed')",
    );
    b.wait_js(
        "the events panel shows the tasks starting",
        "return !!document.querySelector('#events li[data-type=task_state_changed]')",
    );

    b.set_window_size(1440, 1280);
    let png = b.screenshot();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let out = c.dir().join("dashboard.png");
    std::fs::write(&out, &png).expect("write screenshot");
    if std::env::var("ORKESTRATOR_UPDATE_SCREENSHOT").is_ok_and(|v| v == "1") {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/dashboard.png");
        std::fs::write(&docs, &png).expect("write docs/dashboard.png");
        eprintln!("saved {}", docs.display());
    }
    b.close();
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// A job of one task named `main` running `command` (a JSON array) with `env`.
fn job_spec(name: &str, command: &str, env: Value) -> Value {
    let command: Value = serde_json::from_str(command).expect("command is a JSON array");
    json!({
        "name": name,
        "tasks": [{
            "name": "main",
            "image": IMAGE,
            "command": command,
            "env": env,
            "resources": { "cpu": "100m", "memory": "16Mi" },
        }],
    })
}

fn submit(port: u16, spec: &Value) {
    let body = spec.to_string();
    let r = http(
        port,
        "POST",
        "/v1/jobs",
        Some("application/json"),
        body.as_bytes(),
    )
    .expect("POST /v1/jobs");
    assert!(
        r.status == 200 || r.status == 201,
        "submit {}: {} {}",
        spec["name"],
        r.status,
        r.text()
    );
}

/// Whether `html` holds an attribute like ` onclick=`.
fn has_event_attribute(html: &str) -> bool {
    html.match_indices(" on").any(|(i, _)| {
        let rest = &html[i + 3..];
        let name = rest.bytes().take_while(u8::is_ascii_lowercase).count();
        name > 0 && rest[name..].starts_with('=')
    })
}

/// A script that is true once the row of `job` shows `phase`.
fn row_phase_is(job: &str, phase: &str) -> String {
    format!(
        "const td = document.querySelector({});
         return !!td && td.textContent === {}",
        json!(format!("tr[data-job=\"{job}\"] td.phase")),
        json!(phase)
    )
}

/// The browser and its driver.
struct Tools {
    chromium: PathBuf,
    chromedriver: PathBuf,
}

fn browser_required() -> bool {
    std::env::var("ORKESTRATOR_REQUIRE_BROWSER").is_ok_and(|v| v == "1")
        || std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
}

/// The first of `names` found on `PATH`.
fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// Chromium and chromedriver, or `None` after a SKIP line (panics when they are required).
fn browser_or_skip(test: &str) -> Option<Tools> {
    let find = |var: &str, names: &[&str]| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .or_else(|| on_path(names))
    };
    let chromium = find(
        "ORKESTRATOR_CHROMIUM",
        &["chromium", "chromium-browser", "google-chrome"],
    );
    let chromedriver = find("ORKESTRATOR_CHROMEDRIVER", &["chromedriver"]);
    match (chromium, chromedriver) {
        (Some(chromium), Some(chromedriver)) => Some(Tools {
            chromium,
            chromedriver,
        }),
        (chromium, driver) => {
            let missing = format!(
                "{}{}",
                if chromium.is_none() { "chromium " } else { "" },
                if driver.is_none() { "chromedriver" } else { "" }
            );
            if browser_required() {
                panic!(
                    "{test}: the browser test needs {missing} (CI / ORKESTRATOR_REQUIRE_BROWSER); \
                     install the chromium and chromium-driver packages"
                );
            }
            let line = format!(
                "\nSKIP orkestrator-bin test `{test}`: {missing} not found; \
                 set ORKESTRATOR_REQUIRE_BROWSER=1 to fail instead\n"
            );
            let _ = std::io::stderr().write_all(line.as_bytes());
            None
        }
    }
}

/// A chromedriver process and one headless Chromium session through it; blocking methods.
struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
}

impl Browser {
    fn start(tools: &Tools) -> Browser {
        let port = free_port();
        let driver = Command::new(&tools.chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", tools.chromedriver.display()));
        let mut b = Browser {
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("tokio runtime"),
            client: None,
            driver,
        };
        let deadline = Instant::now() + PAGE_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(s)) = b.driver.try_wait() {
                panic!("chromedriver exited: {s}");
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver does not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let caps = json!({
            "browserName": "chrome",
            "unhandledPromptBehavior": "ignore",
            "goog:chromeOptions": {
                "binary": tools.chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1440,1000",
                         "--hide-scrollbars"],
            },
        });
        let caps = match caps {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        let url = format!("http://127.0.0.1:{port}");
        let client =
            b.rt.block_on(
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(caps)
                    .connect(&url),
            )
            .unwrap_or_else(|e| panic!("cannot start a Chromium session: {e}"));
        b.client = Some(client);
        b
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("a session")
    }

    fn goto(&self, url: &str) {
        self.rt
            .block_on(self.client().goto(url))
            .unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    /// Runs `script` (a function body) in the page and returns its value.
    fn js(&self, script: &str) -> Value {
        self.rt
            .block_on(self.client().execute(script, vec![]))
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Runs `script` until it returns something other than false or null, and returns that;
    /// panics after [`PAGE_TIMEOUT`] with what the page shows.
    fn wait_js(&self, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + PAGE_TIMEOUT;
        loop {
            let v = self.js(script);
            if v != Value::Bool(false) && v != Value::Null {
                return v;
            }
            if Instant::now() >= deadline {
                let page = self.js("return document.body.innerText");
                panic!(
                    "timed out after {PAGE_TIMEOUT:?} waiting until {what}\npage text:\n{}",
                    page.as_str().unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the page has listed everything once.
    fn wait_ready(&self) {
        self.wait_js(
            "the dashboard has loaded",
            "return document.documentElement.dataset.ready === 'true'",
        );
    }

    fn alert_text(&self) -> Option<String> {
        self.rt.block_on(self.client().get_alert_text()).ok()
    }

    fn set_window_size(&self, width: u32, height: u32) {
        self.rt
            .block_on(self.client().set_window_size(width, height))
            .expect("set window size");
    }

    fn screenshot(&self) -> Vec<u8> {
        self.rt
            .block_on(self.client().screenshot())
            .expect("screenshot")
    }

    fn close(mut self) {
        if let Some(c) = self.client.take() {
            let _ = self.rt.block_on(c.close());
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            let _ = self.rt.block_on(c.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
