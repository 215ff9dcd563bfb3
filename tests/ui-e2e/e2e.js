// End-to-end test of `tcpfetch ui` in a real browser: Debian's chromium,
// driven by playwright-core. Starts `serve` (and a second one capped at
// 1 MB/s, for what must be caught while it runs) and `ui` on port 0, tests
// the connection, downloads files and checks them on the page and on disk,
// runs a 10-client load test and checks the report, cancels a download and
// a load test, opens `bench --report`'s HTML (no console errors, no
// requests), and saves screenshots at desktop and phone widths.
//
// Usage: node e2e.js BINARY SCREENSHOT_DIR
"use strict";

const { chromium } = require("playwright-core");
const { spawn, spawnSync } = require("node:child_process");
const crypto = require("node:crypto");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const readline = require("node:readline");

const [BIN, SHOTS] = process.argv.slice(2);
if (!BIN || !SHOTS) {
  console.error("usage: node e2e.js BINARY SCREENSHOT_DIR");
  process.exit(2);
}
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const children = [];
let passed = 0;
let failed = 0;

function sha256(data) {
  return crypto.createHash("sha256").update(data).digest("hex");
}

// Start BIN with ARGS and resolve with its first stdout line.
function start(args, stderr) {
  const child = spawn(BIN, args, { stdio: ["ignore", "pipe", stderr] });
  children.push(child);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no first line from ${args[0]}`)), 10000);
    child.on("exit", (code) => reject(new Error(`${args[0]} exited with ${code}`)));
    readline.createInterface({ input: child.stdout }).once("line", (line) => {
      clearTimeout(timer);
      resolve(line);
    });
  });
}

async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok - ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAILED - ${name}\n  ${String(e.stack || e).split("\n").join("\n  ")}`);
    throw e;
  }
}

function expect(cond, what) {
  if (!cond) throw new Error(what);
}

// The load-test files ticked, in list order.
function benchTicks(page) {
  return page.$$eval("#bench-files input:checked", (cbs) => cbs.map((c) => c.value));
}

// Test the connection to ADDR and wait for its list.
async function connect(page, addr) {
  await page.fill("#server", addr);
  await page.press("#server", "Enter");
  await page.waitForFunction((a) => document.getElementById("conn-status").textContent.includes("at " + a)
    && !document.getElementById("files").hidden, addr);
}

async function main() {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "tcpfetch-ui-e2e-"));
  const served = path.join(scratch, "served");
  const downloads = path.join(scratch, "downloads");
  fs.mkdirSync(path.join(served, "docs"), { recursive: true });
  fs.mkdirSync(downloads);
  const data = crypto.randomBytes(3 * 1024 * 1024 + 17);
  fs.writeFileSync(path.join(served, "data.bin"), data);
  fs.writeFileSync(path.join(served, "hello.txt"), "hello, tcpfetch\n");
  fs.writeFileSync(path.join(served, "empty.txt"), "");
  fs.writeFileSync(path.join(served, "gone.txt"), "removed before it is downloaded\n");
  // Six seconds at the slow server's 1 MB/s.
  const big = crypto.randomBytes(6 * 1000 * 1000);
  fs.writeFileSync(path.join(served, "big.bin"), big);
  fs.writeFileSync(path.join(served, "docs", "notes.md"), "# notes\n".repeat(500));
  fs.mkdirSync(SHOTS, { recursive: true });

  const serveLine = await start(["serve", served, "--listen", "127.0.0.1:0"], "ignore");
  const addr = serveLine.replace(/^listening on /, "");
  const slowLine = await start(["serve", served, "--listen", "127.0.0.1:0", "--max-rate", "1M"], "ignore");
  const slowAddr = slowLine.replace(/^listening on /, "");
  const uiLine = await start(["ui", "--listen", "127.0.0.1:0", "--dir", downloads], "inherit");
  const m = /^ui on (http:\/\/127\.0\.0\.1:\d+\/)$/.exec(uiLine);
  expect(m, `unexpected first line from ui: ${uiLine}`);
  const url = m[1];

  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "tcpfetch-ui-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
    viewport: { width: 1280, height: 900 },
  });
  context.setDefaultTimeout(20000);
  try {
    const page = context.pages()[0] || (await context.newPage());
    const pageErrors = [];
    page.on("pageerror", (e) => pageErrors.push(String(e)));
    page.on("dialog", (d) => { pageErrors.push(`unexpected dialog: ${d.message()}`); d.dismiss(); });
    await page.goto(url);

    await check("a wrong address shows its error next to the field", async () => {
      await page.fill("#server", "127.0.0.1:1");
      await page.press("#server", "Enter");
      await page.waitForSelector("#server-error:not(:empty)");
      const text = await page.textContent("#server-error");
      expect(/cannot connect/.test(text), `server error: ${text}`);
      await page.screenshot({ path: path.join(SHOTS, "01-connect-error.png") });
    });

    await check("test connection shows the version and round-trip time", async () => {
      await page.fill("#server", addr);
      await page.press("#server", "Enter");
      await page.waitForSelector("#rtt");
      const status = await page.textContent("#conn-status");
      expect(/tcpfetch \d+\.\d+\.\d+/.test(status) && /round trip [\d.]+ ms/.test(status), `status: ${status}`);
      expect((await page.textContent("#server-error")) === "", "the old error stays");
    });

    await check("the server's files are listed to pick from", async () => {
      await page.waitForSelector("#files tbody tr");
      const names = await page.$$eval("#files td.name label", (ls) => ls.map((l) => l.textContent));
      const want = ["big.bin", "data.bin", "docs/notes.md", "empty.txt", "gone.txt", "hello.txt"];
      expect(JSON.stringify(names) === JSON.stringify(want), `names: ${names}`);
      await page.screenshot({ path: path.join(SHOTS, "02-connected.png") });
    });

    await check("a file removed from the server fails without a leftover progress line", async () => {
      fs.unlinkSync(path.join(served, "gone.txt"));
      await page.click("#files >> text=gone.txt");
      await page.click("#download-btn");
      await page.waitForSelector("#dl-error");
      const error = await page.textContent("#dl-error");
      // Word for word what `tcpfetch get` prints for it.
      const want = `Download of gone.txt failed: no file 'gone.txt' on ${addr}; see 'tcpfetch list ${addr}'`;
      expect(error === want, `error: ${error}`);
      expect(await page.isHidden("#dl-progress"), "the progress line stays after the failure");
      const text = await page.innerText("body");
      const left = /.{0,40}0 B of 0 B.{0,40}/s.exec(text);
      expect(!left, `a '0 B of 0 B' line is left: ${left}`);
      expect(!(await page.isDisabled("#download-btn")), "download stays disabled");
    });

    await check("a failed download shows get's hint after its message", async () => {
      await page.fill("#server", "127.0.0.1:1");
      await page.click("#download-btn");
      await page.waitForSelector("#dl-error >> text=cannot connect");
      const error = await page.textContent("#dl-error");
      const want = "Download of gone.txt failed: cannot connect to 127.0.0.1:1: connection refused"
        + " — is 'tcpfetch serve' running there, and is the port right?";
      expect(error === want, `error: ${error}`);
      await page.fill("#server", addr);
    });

    await check("the load-test choice is the user's own: downloads leave it alone", async () => {
      await page.uncheck("#bench-files >> text=big.bin");
      await page.check("#bench-files >> text=empty.txt");
      await page.check("#bench-files >> text=hello.txt");
      expect((await benchTicks(page)).join() === "empty.txt,hello.txt", "ticks before");
    });

    await check("a picked file downloads and is verified on the page and on disk", async () => {
      await page.click("#files >> text=data.bin");
      await page.click("#download-btn");
      await page.waitForSelector("#dl-verified");
      const shown = await page.textContent("#dl-digest");
      expect(shown === sha256(data), `digest on the page: ${shown}`);
      const saved = fs.readFileSync(path.join(downloads, "data.bin"));
      expect(sha256(saved) === sha256(data), "the file on disk differs");
      const progress = await page.textContent("#dl-text");
      expect(/100%/.test(progress), `progress: ${progress}`);
      // One convention, the README's: sizes in MiB, rates in MB/s.
      const line = await page.textContent("#dl-verified");
      expect(/3\.0 MiB in [\d.]+ s(, [\d.]+ MB\/s)?, saved to/.test(line), `result: ${line}`);
      expect(!/[KMG]iB\/s|\d\.\d\d [KMG]iB/.test(line + progress), `units: ${line} / ${progress}`);
      // The list is fetched again: the server has hashed the file by now.
      await page.waitForSelector(`#files code.digest >> text=${sha256(data)}`);
      await page.screenshot({ path: path.join(SHOTS, "03-downloaded.png") });
    });

    await check("the full digest is in the list and one click selects it whole", async () => {
      const digest = page.locator(`#files code.digest >> text=${sha256(data)}`);
      await digest.click();
      const selected = await page.evaluate(() => String(window.getSelection()));
      expect(selected === sha256(data), `selected: ${selected}`);
    });

    await check("a download does not change the load-test choice", async () => {
      expect((await benchTicks(page)).join() === "empty.txt,hello.txt", `ticks: ${await benchTicks(page)}`);
    });

    await check("a file already here shows no transfer and no made-up speed", async () => {
      await page.click("#files >> text=data.bin");
      await page.click("#download-btn");
      await page.waitForSelector("#dl-verified >> text=Already here");
      const line = await page.textContent("#dl-verified");
      expect(/nothing transferred/.test(line) && !/MB\/s| in [\d.]+ s/.test(line), `result: ${line}`);
      expect(await page.isHidden("#dl-progress"), "a progress line for nothing");
    });

    await check("a nested name is saved under its last component only", async () => {
      await page.click("#files >> text=docs/notes.md");
      await page.click("#download-btn");
      await page.waitForSelector("#dl-verified >> text=notes.md");
      const notes = fs.readFileSync(path.join(downloads, "notes.md"));
      await page.waitForSelector(`#files code.digest >> text=${sha256(notes)}`);
      expect(!fs.existsSync(path.join(downloads, "docs")), "a docs directory was made");
      expect((await benchTicks(page)).join() === "empty.txt,hello.txt", `ticks: ${await benchTicks(page)}`);
    });

    await check("a bad load-test field shows its error next to it", async () => {
      await page.fill("#clients", "0");
      await page.click("#bench-btn");
      await page.waitForSelector("#clients-error:not(:empty)");
      expect(await page.getAttribute("#clients", "aria-invalid") === "true", "clients not marked invalid");
    });

    await check("a 10-client load test shows its report and histogram", async () => {
      await page.fill("#clients", "10");
      await page.fill("#requests", "3");
      await page.uncheck("#bench-files >> text=empty.txt");
      await page.check("#bench-files >> text=data.bin");
      await page.check("#bench-files >> text=hello.txt");
      await page.click("#bench-btn");
      await page.waitForSelector("#report:not([hidden])");
      await page.waitForSelector("#histogram-svg rect");
      const tiles = await page.textContent("#tiles");
      expect(/Requests30/.test(tiles) && /OK30/.test(tiles) && /Failed0/.test(tiles) && /Corrupt0/.test(tiles),
        `tiles: ${tiles}`);
      const bars = await page.$$eval("#histogram-svg rect", (r) => r.length);
      expect(bars >= 1, "no histogram bars");
      const rows = await page.$$eval("#log tbody tr", (r) => r.length);
      expect(rows === 30, `log rows: ${rows}`);
      const href = await page.getAttribute("#log-link", "href");
      const log = await (await page.request.get(new URL(href, url).href)).text();
      const lines = log.trim().split("\n").map((l) => JSON.parse(l));
      expect(lines.length === 30 && lines.every((l) => l.status === "ok" && l.integrity === "ok"),
        `log: ${lines.length} lines`);
      await page.screenshot({ path: path.join(SHOTS, "04-load-test.png"), fullPage: true });
    });

    await check("a running download is cancelled and its part kept", async () => {
      await connect(page, slowAddr);
      await page.click("#files >> text=big.bin");
      await page.click("#download-btn");
      await page.waitForSelector("#dl-cancel:not([hidden])");
      await page.waitForFunction(() => / of /.test(document.getElementById("dl-text").textContent));
      await page.screenshot({ path: path.join(SHOTS, "06-downloading.png") });
      await page.click("#dl-cancel");
      await page.waitForSelector("#dl-cancelled");
      const text = await page.textContent("#dl-cancelled");
      expect(/cancelled at .* of 5\.7 MiB/.test(text) && /big\.bin\.part/.test(text), `cancelled: ${text}`);
      expect(await page.isHidden("#dl-cancel"), "the Cancel button stays");
      const part = path.join(downloads, "big.bin.part");
      expect(fs.existsSync(part) && fs.statSync(part).size > 0, "no .part kept");
      expect(!fs.existsSync(path.join(downloads, "big.bin")), "big.bin was saved");
      await page.screenshot({ path: path.join(SHOTS, "07-download-cancelled.png") });
    });

    await check("a running load test is cancelled and reports what finished", async () => {
      await page.fill("#clients", "2");
      await page.fill("#requests", "20");
      // One client starts with the small file, so a request finishes soon.
      await page.uncheck("#bench-files >> text=data.bin");
      await page.check("#bench-files >> text=big.bin");
      await page.check("#bench-files >> text=hello.txt");
      await page.click("#bench-btn");
      await page.waitForSelector("#bench-cancel:not([hidden])");
      await page.waitForFunction(() => /^[1-9]\d* \//.test(document.getElementById("bench-text").textContent));
      await page.click("#bench-cancel");
      await page.waitForSelector("#report-note:not(:empty)");
      const note = await page.textContent("#report-note");
      expect(/^Cancelled after [1-9]\d* of 40 requests/.test(note), `note: ${note}`);
      const tiles = await page.textContent("#tiles");
      expect(/Failed0/.test(tiles), `tiles: ${tiles}`);
      // 16 bytes in a moment: too little to quote a rate for.
      if (/^Requests1OK1/.test(tiles)) expect(/Throughput–Rate/.test(tiles), `tiles: ${tiles}`);
      expect(!/0\.0MB\/s/.test(tiles), `tiles: ${tiles}`);
      expect(await page.isHidden("#bench-cancel"), "the Cancel button stays");
      await page.screenshot({ path: path.join(SHOTS, "08-load-test-cancelled.png"), fullPage: true });
    });

    await check("a failed connection test clears the old server's files", async () => {
      await page.fill("#server", "127.0.0.1:1");
      await page.press("#server", "Enter");
      await page.waitForSelector("#server-error:not(:empty)");
      await page.waitForSelector("#files", { state: "hidden" });
      const empty = await page.textContent("#files-empty");
      expect(/Test the connection/.test(empty), `empty: ${empty}`);
      expect((await page.$$("#bench-files input")).length === 0, "load-test files are left");
      expect(await page.isDisabled("#download-btn"), "download still enabled");
      await page.screenshot({ path: path.join(SHOTS, "09-connection-failed.png") });
    });

    await check("the cancelled download resumes where it stopped", async () => {
      await connect(page, addr);
      await page.click("#files >> text=big.bin");
      await page.click("#download-btn");
      await page.waitForSelector("#dl-verified");
      const line = await page.textContent("#dl-verified");
      expect(/resumed at/.test(line), `result: ${line}`);
      expect(sha256(fs.readFileSync(path.join(downloads, "big.bin"))) === sha256(big), "big.bin differs");
    });

    await check("the page fits a phone-width screen", async () => {
      await page.setViewportSize({ width: 390, height: 844 });
      await page.waitForFunction(() => document.getElementById("histogram-svg").viewBox.baseVal.width < 400);
      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      expect(width <= 390, `the page is ${width} px wide`);
      await page.screenshot({ path: path.join(SHOTS, "05-phone.png"), fullPage: true });
      await page.locator("section:has(#files-h)").screenshot({ path: path.join(SHOTS, "05-phone-files.png") });
      const digest = await page.locator("#files code.digest").first().boundingBox();
      expect(digest && digest.x + digest.width <= 390, "a digest runs off the screen");
    });

    await check("nothing threw and no dialog opened", async () => {
      expect(pageErrors.length === 0, pageErrors.join("\n"));
    });

    await check("bench --report renders with no console error and no request, at phone and desktop widths", async () => {
      // Runs with a missing file, so the failure chart and the per-file
      // table have something to show; two of them merged through --merge
      // (one run twice is refused).
      const report = path.join(scratch, "report.html");
      const jsons = [path.join(scratch, "run.json"), path.join(scratch, "run2.json")];
      for (const [i, json] of jsons.entries()) {
        const run = spawnSync(BIN, ["bench", addr, "data.bin", "hello.txt", "missing.txt", "--clients", "6",
          "--requests", "4", "--json", ...(i === 0 ? ["--report", report] : [])], { encoding: "utf8" });
        expect(run.status === 1 && /not-found/.test(run.stdout), `bench exited ${run.status}: ${run.stderr}`);
        fs.writeFileSync(json, run.stdout);
      }
      const merged = path.join(scratch, "merged.html");
      const merge = spawnSync(BIN, ["bench", "--merge", ...jsons, "--report", merged], { encoding: "utf8" });
      expect(merge.status === 1 && /2 runs merged/.test(merge.stdout), `merge exited ${merge.status}: ${merge.stderr}`);
      for (const [file, tag] of [[report, "report"], [merged, "merged"]]) {
        const tab = await context.newPage();
        const problems = [];
        const requests = [];
        tab.on("console", (m) => { if (m.type() === "error" || m.type() === "warning") problems.push(`${m.type()}: ${m.text()}`); });
        tab.on("pageerror", (e) => problems.push(String(e)));
        tab.on("request", (r) => requests.push(r.url()));
        const url = "file://" + file;
        for (const [width, name] of [[375, "phone"], [1280, "desktop"]]) {
          await tab.setViewportSize({ width, height: 900 });
          await tab.goto(url);
          await tab.waitForLoadState("load");
          const shown = await tab.$$eval("svg.hist", (svgs) => svgs.filter((s) => s.getBoundingClientRect().width > 0)
            .map((s) => s.viewBox.baseVal.width));
          expect(shown.length === 4, `${tag} ${name}: ${shown.length} charts shown`);
          expect(shown.every((w) => (width < 600 ? w === 360 : w === 880)), `${tag} ${name}: widths ${shown}`);
          const scroll = await tab.evaluate(() => document.documentElement.scrollWidth);
          expect(scroll <= width, `${tag} ${name}: the page is ${scroll} px wide`);
          const text = await tab.textContent("body");
          expect(/Per file/.test(text) && /missing\.txt/.test(text) && /not-found/.test(text), `${tag}: ${text.slice(0, 200)}`);
          await tab.screenshot({ path: path.join(SHOTS, `10-${tag}-${name}.png`), fullPage: true });
        }
        const others = requests.filter((u) => u !== url);
        expect(others.length === 0, `${tag} made requests: ${others.join(", ")}`);
        expect(problems.length === 0, `${tag}: ${problems.join("\n")}`);
        await tab.close();
      }
    });
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

const deadline = setTimeout(() => {
  console.error("e2e: timed out after 120 s");
  for (const c of children) c.kill();
  process.exit(1);
}, 120000);

main()
  .catch((e) => {
    if (!failed) {
      failed++;
      console.log(`FAILED - setup\n  ${e.stack || e}`);
    }
  })
  .finally(() => {
    clearTimeout(deadline);
    for (const c of children) c.kill();
    console.log(`${passed} passed, ${failed} failed`);
    process.exit(failed ? 1 : 0);
  });
