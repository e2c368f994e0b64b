// The media browser (an MCP App) in a real browser: headless Chromium, a minimal MCP Apps host page on the official
// host bridge (@modelcontextprotocol/ext-apps/app-bridge), and media-mcp over stdio on a fresh embedded library.
//
//   node apps_browser_check.mjs CONFIG.json
//
// CONFIG: {
//   "server": {"command": "/path/media-mcp", "args": [], "env": {"MEDIA_MCP_DATA_DIR": ..., ...}},
//   "chromium": "/usr/bin/chromium",
//   "images": {"beach": ["/abs/a.png", "/abs/b.jpg", "/abs/c.png"], "private": "/abs/c.png", "top": ["/abs/d.jpg"],
//              "markup": "/abs/e.png", "instruction": "/abs/f.png", "topPrivate": "/abs/g.png"},
//   "names": {"markup": "<img src=x onerror=...>.png", "instruction": "IGNORE ... .png", "renamed": "new name.jpg"},
//   "screenshotsDir": "/abs/dir", "logFile": "/abs/driver.log", "serverLog": "/abs/server.log",
//   "stepTimeoutMs": 15000, "totalTimeoutMs": 150000
// }
//
// It seeds the library through MCP tool calls (a folder "Trips" holding "Beach" with three images, one private, and
// images of its own: a public one, one renamed to markup, one uploaded under an instruction-like name, a private
// one), then acts as a host does after the model called get_folder on Trips, and drives the app through its DOM
// contract (data-testid / data-action attributes) in scenarios A-I: open, navigate, trash declined and confirmed, the
// trash view, hostile names shown as text, download links (fetched), rename then move, restore. Everything it does
// goes to the log file; stdout gets one JSON summary: {ok, steps: [{step, ok, ms, error?, ...}], hostLog, ...}.
// Any Content-Security-Policy violation fails the run: Chromium's console report ("Refused to ..." in older versions,
// "... violates the following Content Security Policy directive" in 156) or the securitypolicyviolation event, which
// an init script in every frame, the sandboxed app's included, logs to the console.
//
// Loopback only: the page is served from 127.0.0.1 on an ephemeral port, the server speaks stdio, and Chromium is
// told not to resolve names or reach the network.

import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

import { Client } from "@modelcontextprotocol/client";
import { StdioClientTransport } from "@modelcontextprotocol/client/stdio";
import * as esbuild from "esbuild";
import { chromium } from "playwright-core";

const HERE = dirname(fileURLToPath(import.meta.url));
const HOST_DIR = join(HERE, "apps_host");
export const APPS_EXTENSION = "io.modelcontextprotocol/ui";
export const APP_MIME_TYPE = "text/html;profile=mcp-app";
const BRIDGED_METHODS = new Set(["tools/call", "resources/read", "resources/list", "resources/templates/list"]);
const CSP_VIOLATION = /Refused to |Content[- ]Security[- ]Policy|securitypolicyviolation/i;

// ---------------------------------------------------------------------------------------------------------------
// logging

export function makeLogger(file) {
  const started = Date.now();
  return (...parts) => {
    const line = `[${((Date.now() - started) / 1000).toFixed(3)}s] ${parts
      .map((p) => (typeof p === "string" ? p : JSON.stringify(p)))
      .join(" ")}\n`;
    if (file) appendFileSync(file, line);
    else process.stderr.write(line);
  };
}

function clip(value, max = 2000) {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text && text.length > max ? `${text.slice(0, max)}… (${text.length} chars)` : text;
}

// ---------------------------------------------------------------------------------------------------------------
// the MCP side

/** An MCP client on the server's stdio that advertises MCP Apps, as a host that renders them does. */
export async function connectServer({ command, args = [], env = {}, cwd }, { stderrFile, log, timeoutMs }) {
  const transport = new StdioClientTransport({
    command,
    args,
    cwd,
    // a small inherited environment (PATH, HOME, ...) plus the test's; never the whole of the caller's
    env: { ...minimalEnv(), ...env },
    stderr: "pipe",
  });
  const stderr = transport.stderr;
  if (stderr) stderr.on("data", (chunk) => (stderrFile ? appendFileSync(stderrFile, chunk) : undefined));
  const client = new Client(
    { name: "media-mcp-test-host", version: "1.0.0" },
    { capabilities: { extensions: { [APPS_EXTENSION]: { mimeTypes: [APP_MIME_TYPE] } } } },
  );
  await client.connect(transport, { timeout: timeoutMs });
  log("mcp: connected to", client.getServerVersion(), "protocol", transport.protocolVersion ?? "(negotiated)");
  return { client, transport, close: () => client.close().catch(() => undefined) };
}

function minimalEnv() {
  const keep = ["PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT", "USERPROFILE"];
  return Object.fromEntries(keep.filter((k) => process.env[k] !== undefined).map((k) => [k, process.env[k]]));
}

/** A raw request, as the host page forwards it for the app (the client's typed helpers validate more than needed). */
export async function mcpRequest(client, method, params, timeoutMs) {
  if (!BRIDGED_METHODS.has(method)) throw new Error(`the host does not forward ${method}`);
  if (method === "tools/call") return client.callTool(params, { timeout: timeoutMs });
  if (method === "resources/read") return client.readResource(params, { timeout: timeoutMs });
  if (method === "resources/list") return client.listResources(params, { timeout: timeoutMs });
  return client.listResourceTemplates(params, { timeout: timeoutMs });
}

/** Call a tool and fail on an error result; returns {structured, text, result}. */
export async function callTool(client, name, args, timeoutMs) {
  const result = await client.callTool({ name, arguments: args }, { timeout: timeoutMs });
  const text = (result.content ?? [])
    .filter((c) => c.type === "text")
    .map((c) => c.text)
    .join("\n");
  if (result.isError) throw new Error(`${name}(${clip(args, 400)}) failed: ${clip(text, 1500)}`);
  return { structured: result.structuredContent, text, result };
}

export async function listAllTools(client, timeoutMs) {
  const tools = [];
  let cursor;
  do {
    const page = await client.listTools(cursor ? { cursor } : {}, { timeout: timeoutMs });
    tools.push(...page.tools);
    cursor = page.nextCursor;
  } while (cursor);
  return tools;
}

// ---------------------------------------------------------------------------------------------------------------
// the browser side

/** Bundle the host page (host.html + host.mjs) into a fresh temporary directory; returns its path. */
export async function buildHost() {
  const out = mkdtempSync(join(tmpdir(), "media-mcp-apps-host-"));
  await esbuild.build({
    entryPoints: [join(HOST_DIR, "host.mjs")],
    bundle: true,
    format: "iife",
    platform: "browser",
    target: "chrome120",
    outfile: join(out, "host.js"),
    logLevel: "silent",
  });
  writeFileSync(join(out, "host.html"), readFileSync(join(HOST_DIR, "host.html")));
  return out;
}

/** Serve the bundled host page on 127.0.0.1 (an ephemeral port); two files, nothing else. */
export async function serveHost(dir) {
  const files = {
    "/": ["host.html", "text/html; charset=utf-8"],
    "/host.html": ["host.html", "text/html; charset=utf-8"],
    "/host.js": ["host.js", "text/javascript; charset=utf-8"],
  };
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://127.0.0.1").pathname;
    const entry = files[path];
    if (!entry || req.method !== "GET") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
      return;
    }
    const body = readFileSync(join(dir, entry[0]));
    res.writeHead(200, { "content-type": entry[1], "cache-control": "no-store" }).end(body);
  });
  await new Promise((ok, fail) => {
    server.once("error", fail);
    server.listen(0, "127.0.0.1", ok);
  });
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}/host.html`,
    close: () => new Promise((ok) => server.close(() => ok())),
  };
}

/**
 * Launch Chromium headless (no network beyond loopback, no name resolution), open a page whose `mcpRequest` binding
 * (main frame only) forwards to the MCP client, and collect console lines and CSP violations.
 */
export async function openHostPage({ executablePath, client, log, timeoutMs, onConsole }) {
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    timeout: timeoutMs,
    args: [
      "--no-sandbox", // containers and CI often run as root, where Chromium's own sandbox cannot start
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-domain-reliability",
      "--disable-sync",
      // nothing but loopback: any name resolves to nowhere, any proxy is ignored
      "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
      "--no-proxy-server",
    ],
  });
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  page.setDefaultTimeout(timeoutMs);
  const consoleLines = [];
  const cspViolations = [];
  const pageErrors = [];
  page.on("console", (msg) => {
    const frame = msg.location?.()?.url ?? "";
    const line = `${msg.type()}: ${msg.text()}`;
    consoleLines.push(line);
    log("console", frame ? `(${clip(frame, 80)})` : "", clip(line, 3000));
    // Chromium 156 says "Loading the image '...' violates the following Content Security Policy directive",
    // older ones "Refused to load ..."; the init script below adds the event's own report
    if (CSP_VIOLATION.test(msg.text())) cspViolations.push(msg.text());
    onConsole?.(line);
  });
  page.on("pageerror", (error) => {
    pageErrors.push(String(error?.stack ?? error));
    log("pageerror", String(error?.stack ?? error));
  });
  page.on("frameattached", (frame) => log("frame attached", frame.name() || "(unnamed)"));
  // every frame, the sandboxed app's too: report what the CSP blocks (Chromium also logs "Refused to ...")
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (event) => {
      console.error(
        `securitypolicyviolation: ${event.violatedDirective} blocked ${event.blockedURI || "(inline)"} ` +
          `at ${event.sourceFile || "?"}:${event.lineNumber || 0}`,
      );
    });
  });
  await page.exposeBinding("mcpRequest", async (source, method, params) => {
    if (source.frame !== page.mainFrame()) throw new Error("mcpRequest is the host's, not the app's");
    log("bridge ->", method, clip(params, 600));
    try {
      const result = await mcpRequest(client, method, params, timeoutMs);
      log("bridge <-", method, clip(result, 600));
      return result;
    } catch (error) {
      log("bridge <- error", method, String(error?.message ?? error));
      throw error;
    }
  });
  return { browser, context, page, consoleLines, cspViolations, pageErrors };
}

/**
 * What a host does after the model called a UI tool: find the tool's ui:// resource, read it, and render it with
 * the tool's input and result. Returns {resourceUri, csp, policy, frame}.
 */
export async function renderToolApp({ page, client, tools, toolName, toolArguments, toolResult, log, timeoutMs }) {
  const tool = tools.find((t) => t.name === toolName);
  if (!tool) throw new Error(`tools/list has no ${toolName}`);
  const resourceUri = tool._meta?.ui?.resourceUri;
  if (typeof resourceUri !== "string" || !resourceUri.startsWith("ui://"))
    throw new Error(`${toolName} has no _meta.ui.resourceUri: ${clip(tool._meta)}`);
  const read = await client.readResource({ uri: resourceUri }, { timeout: timeoutMs });
  const content = read.contents?.[0];
  if (!content || typeof content.text !== "string") throw new Error(`${resourceUri} has no text content`);
  if (content.mimeType !== APP_MIME_TYPE)
    throw new Error(`${resourceUri} is served as ${content.mimeType}, not ${APP_MIME_TYPE}`);
  const csp = content._meta?.ui?.csp;
  log("app resource", resourceUri, `${content.text.length} chars`, "csp", csp ?? "(none)");
  const started = await page.evaluate((args) => window.startApp(args), {
    html: content.text,
    csp,
    tool,
    toolArguments,
    toolResult,
  });
  log("app initialized", started);
  return { resourceUri, csp, policy: started.policy, appInfo: started.appInfo, html: content.text };
}

// ---------------------------------------------------------------------------------------------------------------
// the scenarios

function rowsOf(table) {
  const columns = table?.columns ?? [];
  return (table?.rows ?? []).map((row) => Object.fromEntries(columns.map((c, i) => [c, row[i]])));
}

async function waitReady(app, timeout) {
  await app.locator("body[data-state='ready']").waitFor({ state: "attached", timeout });
}

/** Click and wait until the app has been busy (a call) and is ready again; a click that calls nothing is fine too. */
async function act(app, locator, timeout) {
  await locator.click({ timeout });
  await waitReady(app, timeout);
}

/** Wait until the element's text matches; on a timeout, say what it showed instead. */
async function waitText(locator, pattern, timeout, what) {
  try {
    await locator.filter({ hasText: pattern }).first().waitFor({ state: "visible", timeout });
  } catch (error) {
    const shown = await locator
      .first()
      .innerText({ timeout: 1000 })
      .catch(() => "(not there)");
    throw new Error(`${what}: expected text matching ${pattern}, it shows ${JSON.stringify(shown)} (${error.message})`);
  }
  return locator.first().innerText({ timeout });
}

function texts(entries) {
  return entries.map((e) => e.text ?? JSON.stringify(e.params ?? e)).join("\n");
}

export function emptySummary() {
  return { ok: false, steps: [], screenshots: [], hostLog: [], cspViolations: [], pageErrors: [] };
}

export async function run(config, summary = emptySummary()) {
  const stepTimeout = config.stepTimeoutMs ?? 15000;
  const log = makeLogger(config.logFile);
  const screenshotsDir = config.screenshotsDir;
  mkdirSync(screenshotsDir, { recursive: true });
  const cleanups = [];
  let failed = false;

  async function step(name, fn) {
    if (failed) {
      summary.steps.push({ step: name, ok: false, skipped: true });
      return undefined;
    }
    const t0 = Date.now();
    log(`== ${name}`);
    try {
      const details = (await fn()) ?? {};
      summary.steps.push({ step: name, ok: true, ms: Date.now() - t0, ...details });
      log(`== ${name}: ok`, details);
      return details;
    } catch (error) {
      failed = true;
      const message = String(error?.stack ?? error);
      summary.steps.push({ step: name, ok: false, ms: Date.now() - t0, error: clip(message, 4000) });
      log(`== ${name}: FAILED`, message);
      return undefined;
    }
  }

  const ctx = {};
  try {
    await step("start server", async () => {
      const mcp = await connectServer(config.server, { stderrFile: config.serverLog, log, timeoutMs: stepTimeout });
      cleanups.push(mcp.close);
      ctx.client = mcp.client;
      ctx.tools = await listAllTools(ctx.client, stepTimeout);
      const byName = Object.fromEntries(ctx.tools.map((t) => [t.name, t]));
      summary.tools = ctx.tools.map((t) => ({ name: t.name, ui: t._meta?.ui ?? null }));
      for (const [tool, args] of [
        ["create_folder", ["name", "parent_folder_id"]],
        ["upload_file", ["path", "paths", "folder_id", "private", "name"]],
        ["update_file", ["file_id", "name"]],
        ["search_files", ["folder_id", "root"]],
        ["get_folder", ["folder_id"]],
        ["get_file", ["file_id"]],
      ]) {
        const props = byName[tool]?.inputSchema?.properties;
        if (!props) throw new Error(`the server has no tool ${tool}; it lists ${Object.keys(byName).join(", ")}`);
        const missing = args.filter((a) => !(a in props));
        if (missing.length) throw new Error(`${tool} lacks the arguments ${missing.join(", ")}: ${Object.keys(props)}`);
      }
      return { server: ctx.client.getServerVersion(), tools: ctx.tools.length };
    });

    await step("seed library", async () => {
      const { beach, top } = config.images;
      const privatePath = config.images.private;
      const trips = await callTool(ctx.client, "create_folder", { name: "Trips" }, stepTimeout);
      ctx.tripsId = trips.structured.folder.id;
      const beachFolder = await callTool(
        ctx.client,
        "create_folder",
        { name: "Beach", parent_folder_id: ctx.tripsId },
        stepTimeout,
      );
      ctx.beachId = beachFolder.structured.folder.id;
      const upload = async (paths, folderId, isPrivate, name) => {
        const args = name
          ? { path: paths[0], name, folder_id: folderId, private: isPrivate }
          : { paths, folder_id: folderId, private: isPrivate };
        const done = await callTool(ctx.client, "upload_file", args, stepTimeout);
        if (done.structured.failed?.length) throw new Error(`upload failed: ${clip(done.structured.failed)}`);
        if (done.structured.files?.length !== paths.length)
          throw new Error(`upload of ${paths.length} file(s) answered ${clip(done.structured)}`);
        return done.structured.files;
      };
      const publicBeach = beach.filter((p) => p !== privatePath);
      const files = [
        ...(await upload(publicBeach, ctx.beachId, false)),
        ...(await upload([privatePath], ctx.beachId, true)),
      ];
      const topFiles = await upload(top, ctx.tripsId, false);
      // F: a name of markup, given by a rename (update_file), and an instruction-like one, given at upload
      const [markup] = await upload([config.images.markup], ctx.tripsId, false);
      const renamed = await callTool(
        ctx.client,
        "update_file",
        { file_id: markup.id, name: config.names.markup },
        stepTimeout,
      );
      const markupNow = renamed.structured.files?.find((f) => f.id === markup.id);
      if (markupNow?.name !== config.names.markup)
        throw new Error(`update_file did not give the markup name: ${clip(renamed.structured)}`);
      const [instruction] = await upload([config.images.instruction], ctx.tripsId, false, config.names.instruction);
      if (instruction.name !== config.names.instruction)
        throw new Error(`upload_file did not keep the instruction-like name: ${clip(instruction)}`);
      // G: a private file that stays out of the trash (Beach's private one goes in D)
      const [topPrivate] = await upload([config.images.topPrivate], ctx.tripsId, true);
      ctx.beachFiles = files;
      ctx.topFiles = topFiles;
      ctx.privateFile = files.find((f) => f.private);
      ctx.hostile = [
        { ...markupNow, expected: config.names.markup },
        { ...instruction, expected: config.names.instruction },
      ];
      ctx.topPrivate = topPrivate;
      return {
        tripsId: ctx.tripsId,
        beachId: ctx.beachId,
        beach: files.map((f) => ({ id: f.id, name: f.name, private: f.private, status: f.status })),
        top: [...topFiles, markupNow, instruction, topPrivate].map((f) => ({
          id: f.id,
          name: f.name,
          private: f.private,
        })),
      };
    });

    await step("open host page", async () => {
      const dir = await buildHost();
      cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
      const served = await serveHost(dir);
      cleanups.push(served.close);
      const host = await openHostPage({
        executablePath: config.chromium,
        client: ctx.client,
        log,
        timeoutMs: stepTimeout,
      });
      cleanups.push(() => host.browser.close().catch(() => undefined));
      Object.assign(ctx, host);
      await host.page.goto(served.url, { waitUntil: "load", timeout: stepTimeout });
      await host.page.waitForFunction(() => typeof window.startApp === "function", null, { timeout: stepTimeout });
      return { url: served.url, browser: host.browser.version() };
    });

    // the app's DOM contract
    const fileTile = (id) => ctx.app.locator(`[data-testid=file][data-file-id="${id}"]`);
    const folderTile = (id) => ctx.app.locator(`[data-testid=folder][data-folder-id="${id}"]`);
    const fileNames = () => ctx.app.locator("[data-testid=file]").evaluateAll((els) => els.map((e) => e.dataset.name));
    const crumbs = () => ctx.app.locator("nav[data-testid=breadcrumb] button[data-folder-id]");
    const wait = (locator, state = "visible") => locator.waitFor({ state, timeout: stepTimeout });
    async function screenshot(name) {
      const path = join(screenshotsDir, name);
      await ctx.page.screenshot({ path, fullPage: true });
      summary.screenshots.push(path);
    }

    await step("A open: get_folder(Trips) rendered", async () => {
      // what the model calls: get_folder, bound to the media browser; the page then lists the folder itself
      const args = { folder_id: ctx.tripsId };
      const browsed = await ctx.client.callTool({ name: "get_folder", arguments: args }, { timeout: stepTimeout });
      if (browsed.isError) throw new Error(`get_folder failed: ${clip(browsed.content)}`);
      const rendered = await renderToolApp({
        page: ctx.page,
        client: ctx.client,
        tools: ctx.tools,
        toolName: "get_folder",
        toolArguments: args,
        toolResult: browsed,
        log,
        timeoutMs: stepTimeout,
      });
      ctx.app = ctx.page.frameLocator("iframe#app");
      await waitReady(ctx.app, stepTimeout);
      await wait(crumbs().filter({ hasText: "Trips" }).first());
      await wait(folderTile(ctx.beachId));
      await wait(fileTile(ctx.topFiles[0].id));
      await screenshot("browser.png");
      return {
        resourceUri: rendered.resourceUri,
        csp: rendered.csp ?? null,
        policy: rendered.policy,
        appInfo: rendered.appInfo,
        breadcrumb: await crumbs().allInnerTexts(),
        beachName: await folderTile(ctx.beachId).getAttribute("data-name"),
        fileNames: await fileNames(),
      };
    });

    await step("B navigate into Beach", async () => {
      await act(ctx.app, folderTile(ctx.beachId).locator("button[data-action=open]"), stepTimeout);
      for (const file of ctx.beachFiles) await wait(fileTile(file.id));
      const count = await ctx.app.locator("[data-testid=file]").count();
      if (count !== 3) throw new Error(`Beach shows ${count} file tiles, not 3: ${await fileNames()}`);
      // a thumbnail in each tile: an <img> with a data: URL, decoded
      const thumbs = [];
      for (const file of ctx.beachFiles) {
        const img = fileTile(file.id).locator("img[src^='data:']").first();
        await wait(img);
        const info = await img.evaluate(async (el) => {
          try {
            await el.decode();
          } catch {
            // reported below as a zero size
          }
          return { src: el.src.slice(0, 30), width: el.naturalWidth, height: el.naturalHeight };
        });
        if (!(info.width > 0)) throw new Error(`the thumbnail of ${file.name} did not decode: ${info.src}`);
        thumbs.push({ id: file.id, ...info });
      }
      for (const file of ctx.beachFiles) {
        const flag = await fileTile(file.id).getAttribute("data-private");
        if (flag !== String(file.private))
          throw new Error(`${file.name} (private: ${file.private}) has data-private=${flag}`);
      }
      return { files: count, thumbs, breadcrumb: await crumbs().allInnerTexts() };
    });

    // the two files trashed: the first public one and the private one
    const chosen = () => [ctx.beachFiles.find((f) => !f.private), ctx.privateFile];

    // select the files' tiles; the toolbar's `action` button (trash in a folder, restore in the trash) then enabled
    async function select(files, action = "trash") {
      for (const file of files) {
        if ((await fileTile(file.id).getAttribute("aria-selected")) !== "true") {
          await fileTile(file.id).click({ timeout: stepTimeout });
          await waitReady(ctx.app, stepTimeout);
        }
        await wait(ctx.app.locator(`[data-testid=file][data-file-id="${file.id}"][aria-selected=true]`));
      }
      if (await ctx.app.locator(`button[data-action=${action}]`).isDisabled())
        throw new Error(`the ${action} button stays disabled with files selected`);
    }

    async function askToTrash(files) {
      await select(files);
      await ctx.app.locator("button[data-action=trash]").click({ timeout: stepTimeout });
      const confirm = ctx.app.locator("[data-testid=confirm]");
      await wait(confirm);
      await waitReady(ctx.app, stepTimeout);
      return confirm;
    }

    // what the app told the model (ui/update-model-context, ui/message), as text
    async function toldModel() {
      summary.hostLog = await ctx.page.evaluate(() => window.hostLog);
      return summary.hostLog
        .filter((e) => e.kind === "update-model-context" || e.kind === "message")
        .map((e) => ({ kind: e.kind, text: JSON.stringify(e.params) }));
    }

    // a statement that files went to the trash ("... moved to the trash: ...", "... were trashed"), not a refusal
    const claimsTrash = (text) =>
      /\bmoved\b[^.]*\btrash\b|\btrashed\b/i.test(text) && !/\b(declined|cancell?ed|nothing changed)\b/i.test(text);

    await step("C declined trash", async () => {
      const disabledBefore = await ctx.app.locator("button[data-action=trash]").isDisabled();
      const confirm = await askToTrash(chosen());
      const summaryText = await waitText(
        ctx.app.locator("[data-testid=confirm-summary]"),
        /\b2\b/,
        stepTimeout,
        "the confirmation's summary of 2 files",
      );
      const confirmThumbs = await confirm.locator("img").count();
      await screenshot("trash-confirm.png");
      await confirm.locator("button[data-action=cancel]").click({ timeout: stepTimeout });
      await wait(confirm, "hidden");
      await waitReady(ctx.app, stepTimeout);
      for (const file of ctx.beachFiles) await wait(fileTile(file.id));
      const listed = await callTool(ctx.client, "search_files", { folder_id: ctx.beachId }, stepTimeout);
      const names = rowsOf(listed.structured).map((r) => r.name);
      if (names.length !== 3) throw new Error(`after a cancel, search_files in Beach lists ${names.length}: ${names}`);
      const told = await toldModel();
      const claims = told.filter((e) => claimsTrash(e.text));
      if (claims.length) throw new Error(`after a cancel the model was told of a trash: ${texts(claims)}`);
      ctx.toldBeforeConfirm = told.length;
      return { disabledBefore, summary: summaryText, confirmThumbs, searchFiles: names, toldModel: told };
    });

    await step("D confirmed trash", async () => {
      const files = chosen();
      const confirm = await askToTrash(files);
      await confirm.locator("button[data-action=confirm]").click({ timeout: stepTimeout });
      await wait(confirm, "hidden");
      for (const file of files) await wait(fileTile(file.id), "detached");
      await waitReady(ctx.app, stepTimeout);
      const status = await waitText(ctx.app.locator("[data-testid=status]"), /trash/i, stepTimeout, "the status line");
      const left = await fileNames();
      const trashed = await callTool(ctx.client, "search_files", { root: "TRASH_ROOT" }, stepTimeout);
      const inTrash = rowsOf(trashed.structured).map((r) => r.id);
      const missing = files.filter((f) => !inTrash.includes(f.id)).map((f) => f.name);
      if (missing.length) throw new Error(`not in the trash per search_files(root=TRASH_ROOT): ${missing}`);
      const told = (await toldModel())
        .slice(ctx.toldBeforeConfirm)
        .filter((e) => files.every((f) => e.text.includes(f.name)) && claimsTrash(e.text));
      if (!told.length)
        throw new Error(
          "no ui/update-model-context or ui/message since the confirmation says both files went to the trash; " +
            `host log:\n${clip(summary.hostLog, 3000)}`,
        );
      return { status, left, trashIds: inTrash, toldModel: told };
    });

    await step("E trash view", async () => {
      await act(ctx.app, ctx.app.locator("button[data-action=show-trash]"), stepTimeout);
      for (const file of chosen()) await wait(fileTile(file.id));
      return { names: await fileNames() };
    });

    // hostile names are data: shown as text, never parsed as markup nor run
    await step("F hostile names render as text", async () => {
      await act(ctx.app, ctx.app.locator("button[data-action=show-library]"), stepTimeout);
      await act(ctx.app, folderTile(ctx.tripsId).locator("button[data-action=open]"), stepTimeout);
      for (const file of [...ctx.topFiles, ...ctx.hostile, ctx.topPrivate]) await wait(fileTile(file.id));
      const shown = [];
      for (const file of ctx.hostile) {
        const tile = fileTile(file.id);
        const got = {
          id: file.id,
          text: await tile.locator(".name").evaluate((el) => el.textContent),
          title: await tile.locator(".name").getAttribute("title"),
          dataName: await tile.getAttribute("data-name"),
          elementsInName: await tile.locator(".name *").count(),
        };
        for (const key of ["text", "title", "dataName"])
          if (got[key] !== file.expected)
            throw new Error(
              `the tile of ${file.id} shows ${key} ${JSON.stringify(got[key])}, not ${JSON.stringify(file.expected)}`,
            );
        if (got.elementsInName) throw new Error(`the name of ${file.id} holds ${got.elementsInName} element(s)`);
        shown.push(got);
      }
      // the markup made no element: no <img src=x>, and no image in the frame but the thumbnails (data: URLs)
      const injected = await ctx.app.locator('img[src="x"], [onerror]').count();
      if (injected) throw new Error(`the app frame holds ${injected} element(s) made from a name's markup`);
      const otherImages = await ctx.app
        .locator("img")
        .evaluateAll((els) => els.map((e) => e.getAttribute("src")).filter((src) => !src?.startsWith("data:image/")));
      if (otherImages.length) throw new Error(`images in the app frame that are not thumbnails: ${otherImages}`);
      const hostInjected = await ctx.page.locator('img[src="x"]').count();
      if (hostInjected) throw new Error(`the host page holds ${hostInjected} <img src=x>`);
      const log = await ctx.page.evaluate(() => window.hostLog);
      const stray = log.filter((e) => e.kind === "stray-message");
      if (stray.length) throw new Error(`the host got messages that are not JSON-RPC: ${clip(stray)}`);
      const errors = (ctx.consoleLines ?? []).filter((line) => line.startsWith("error:"));
      if (errors.length) throw new Error(`console errors:\n${errors.join("\n")}`);
      if (ctx.cspViolations.length) throw new Error(`CSP violations:\n${ctx.cspViolations.join("\n")}`);
      return { shown, fileNames: await fileNames(), strayMessages: stray.length, consoleErrors: errors.length };
    });

    await step("G download link of a private file", async () => {
      const file = ctx.topPrivate;
      const toldBefore = (await toldModel()).length;
      if ((await fileTile(file.id).getAttribute("data-private")) !== "true")
        throw new Error(`${file.name} is not shown as private`);
      await select([file], "links");
      await act(ctx.app, ctx.app.locator("button[data-action=links]"), stepTimeout);
      const panel = ctx.app.locator("[data-testid=links]");
      await wait(panel);
      const items = panel.locator("[data-testid=link]");
      const count = await items.count();
      if (count !== 1) throw new Error(`the links panel shows ${count} links, not 1: ${await panel.innerText()}`);
      const url = await items.first().locator("input").inputValue();
      if (!/^http:\/\/127\.0\.0\.1:\d+\//.test(url)) throw new Error(`the link is not on loopback: ${url}`);
      const line = await items.first().locator("div").first().innerText();
      const expires = /\bexpires (\S+)/.exec(line)?.[1];
      const expiresAt = expires ? Date.parse(expires) : NaN;
      if (!Number.isFinite(expiresAt)) throw new Error(`no expiry time in the link's line: ${JSON.stringify(line)}`);
      const expiresInSeconds = Math.round((expiresAt - Date.now()) / 1000);
      if (!(expiresInSeconds > 0 && expiresInSeconds <= 15 * 60))
        throw new Error(`the private link expires in ${expiresInSeconds} s (${expires}), not within 15 minutes`);
      const told = (await toldModel()).slice(toldBefore);
      const naming = told.filter((e) => e.kind === "update-model-context" && e.text.includes(file.name));
      if (!naming.length) throw new Error(`no ui/update-model-context names ${file.name}: ${texts(told)}`);
      // the link serves the file's bytes, from here (loopback)
      const response = await fetch(url, { redirect: "follow", signal: AbortSignal.timeout(stepTimeout) });
      const body = Buffer.from(await response.arrayBuffer());
      if (response.status !== 200 || body.length === 0)
        throw new Error(`GET of the link answered ${response.status} with ${body.length} bytes`);
      const uploaded = readFileSync(config.images.topPrivate);
      return {
        name: file.name,
        links: count,
        urlPrefix: url.replace(/^(http:\/\/127\.0\.0\.1:\d+\/).*$/, "$1"),
        line,
        expiresAt: expires,
        expiresInSeconds,
        toldModel: naming,
        fetched: {
          status: response.status,
          bytes: body.length,
          contentType: response.headers.get("content-type"),
          png: body.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])),
          sameAsUploaded: body.equals(uploaded),
        },
      };
    });

    await step("H rename then move up", async () => {
      const file = ctx.beachFiles.find((f) => !f.private && !chosen().some((c) => c.id === f.id));
      const newName = config.names.renamed;
      const toldBefore = (await toldModel()).length;
      await act(ctx.app, folderTile(ctx.beachId).locator("button[data-action=open]"), stepTimeout);
      await wait(fileTile(file.id));
      // rename
      await select([file], "rename");
      await ctx.app.locator("button[data-action=rename]").click({ timeout: stepTimeout });
      const renamePanel = ctx.app.locator("[data-testid=rename]");
      await wait(renamePanel);
      const field = renamePanel.locator('input[aria-label="New name"]');
      const before = await field.inputValue();
      await field.fill(newName, { timeout: stepTimeout });
      await act(ctx.app, renamePanel.locator("button[data-action=rename-confirm]"), stepTimeout);
      await wait(renamePanel, "detached");
      await wait(fileTile(file.id).locator(".name").filter({ hasText: newName }));
      const tileName = await fileTile(file.id).locator(".name").evaluate((el) => el.textContent);
      if (tileName !== newName) throw new Error(`the renamed tile shows ${JSON.stringify(tileName)}`);
      const got = await callTool(ctx.client, "get_file", { file_id: file.id }, stepTimeout);
      const serverName = got.structured.files?.[0]?.name;
      if (serverName !== newName) throw new Error(`get_file names it ${JSON.stringify(serverName)}, not ${newName}`);
      // move to the parent, Trips, offered as "Trips (up)"
      await select([file], "move");
      await ctx.app.locator("button[data-action=move]").click({ timeout: stepTimeout });
      const movePanel = ctx.app.locator("[data-testid=move]");
      await wait(movePanel);
      const destination = movePanel.locator('select[aria-label="Destination"]');
      const options = await destination
        .locator("option")
        .evaluateAll((els) => els.map((o) => ({ value: o.value, text: o.textContent })));
      const up = options.find((o) => o.value === ctx.tripsId);
      if (!up || up.text !== "Trips (up)") throw new Error(`no "Trips (up)" among the destinations: ${clip(options)}`);
      await destination.selectOption(ctx.tripsId, { timeout: stepTimeout });
      await act(ctx.app, movePanel.locator("button[data-action=move-confirm]"), stepTimeout);
      await wait(fileTile(file.id), "detached");
      await waitReady(ctx.app, stepTimeout);
      const left = await fileNames();
      const inTrips = rowsOf(
        (await callTool(ctx.client, "search_files", { folder_id: ctx.tripsId, limit: 100 }, stepTimeout)).structured,
      );
      const moved = inTrips.find((r) => r.id === file.id);
      if (moved?.name !== newName)
        throw new Error(`search_files in Trips does not list ${newName}: ${clip(inTrips.map((r) => r.name))}`);
      const inBeach = rowsOf(
        (await callTool(ctx.client, "search_files", { folder_id: ctx.beachId }, stepTimeout)).structured,
      );
      if (inBeach.some((r) => r.id === file.id)) throw new Error(`search_files in Beach still lists ${newName}`);
      const told = (await toldModel()).slice(toldBefore).filter((e) => e.kind === "update-model-context");
      const renameTold = told.filter(
        (e) => /renamed/.test(e.text) && e.text.includes(file.name) && e.text.includes(newName),
      );
      const moveTold = told.filter(
        (e) => /moved/.test(e.text) && e.text.includes(newName) && e.text.includes(ctx.tripsId),
      );
      if (!renameTold.length || !moveTold.length)
        throw new Error(`the model was not told of the rename and the move: ${texts(told)}`);
      ctx.movedFile = { ...file, name: newName };
      return {
        id: file.id,
        from: before,
        to: newName,
        getFile: serverName,
        options: options.map((o) => o.text),
        left,
        inTrips: inTrips.map((r) => r.name).sort(),
        toldModel: [...renameTold, ...moveTold],
      };
    });

    await step("I restore from the trash view", async () => {
      const [file, stays] = chosen();
      const toldBefore = (await toldModel()).length;
      await act(ctx.app, ctx.app.locator("button[data-action=show-trash]"), stepTimeout);
      await wait(fileTile(file.id));
      await wait(fileTile(stays.id));
      await select([file], "restore");
      await act(ctx.app, ctx.app.locator("button[data-action=restore]"), stepTimeout);
      await wait(fileTile(file.id), "detached");
      await wait(fileTile(stays.id));
      const trashView = await fileNames();
      const inBeach = rowsOf(
        (await callTool(ctx.client, "search_files", { folder_id: ctx.beachId }, stepTimeout)).structured,
      );
      if (!inBeach.some((r) => r.id === file.id))
        throw new Error(`search_files in Beach does not list ${file.name}: ${inBeach.map((r) => r.name)}`);
      const inTrash = rowsOf(
        (await callTool(ctx.client, "search_files", { root: "TRASH_ROOT" }, stepTimeout)).structured,
      ).map((r) => r.name);
      const told = (await toldModel())
        .slice(toldBefore)
        .filter((e) => e.kind === "update-model-context" && /restored/.test(e.text) && e.text.includes(file.name));
      if (!told.length) throw new Error(`the model was not told of the restore: ${clip(summary.hostLog.slice(-5))}`);
      return {
        restored: file.name,
        trashView,
        searchFilesBeach: inBeach.map((r) => r.name).sort(),
        searchFilesTrash: inTrash,
        toldModel: told,
      };
    });

    await step("no CSP violations, no page errors", async () => {
      if (ctx.cspViolations?.length) throw new Error(`CSP violations:\n${ctx.cspViolations.join("\n")}`);
      if (ctx.pageErrors?.length) throw new Error(`uncaught errors in the page:\n${ctx.pageErrors.join("\n")}`);
      const errors = (ctx.consoleLines ?? []).filter((line) => line.startsWith("error:"));
      if (errors.length) throw new Error(`console errors:\n${errors.join("\n")}`);
      const stray = (await ctx.page.evaluate(() => window.hostLog)).filter((e) => e.kind === "stray-message");
      if (stray.length) throw new Error(`the host got messages that are not JSON-RPC: ${clip(stray)}`);
      return {};
    });
  } finally {
    if (ctx.page) {
      await refreshHostLogSafe(ctx, summary);
      summary.hostState = await ctx.page.evaluate(() => window.hostState).catch(() => null);
    }
    summary.cspViolations = ctx.cspViolations ?? [];
    summary.pageErrors = ctx.pageErrors ?? [];
    summary.console = (ctx.consoleLines ?? []).slice(-200);
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup();
      } catch (error) {
        log("cleanup failed", String(error));
      }
    }
  }
  summary.ok = summary.steps.every((s) => s.ok);
  return summary;
}

async function refreshHostLogSafe(ctx, summary) {
  try {
    summary.hostLog = await ctx.page.evaluate(() => window.hostLog);
  } catch {
    // the page may be gone
  }
}

// ---------------------------------------------------------------------------------------------------------------

async function main() {
  const configPath = process.argv[2];
  if (!configPath) {
    process.stderr.write("usage: node apps_browser_check.mjs CONFIG.json\n");
    process.exit(2);
  }
  const config = JSON.parse(readFileSync(resolve(configPath), "utf8"));
  if (process.env.MEDIA_MCP_SCREENSHOTS_DIR) config.screenshotsDir = process.env.MEDIA_MCP_SCREENSHOTS_DIR;
  const total = config.totalTimeoutMs ?? 150000;
  const summary = emptySummary();
  const deadline = setTimeout(() => {
    // the steps so far, then out: Playwright closes the browser on exit, and the server ends with its stdin
    summary.error = `the check took over ${total} ms`;
    process.stdout.write(`${JSON.stringify(summary, null, 1)}\n`);
    process.exit(3);
  }, total);
  await run(config, summary);
  clearTimeout(deadline);
  process.stdout.write(`${JSON.stringify(summary, null, 1)}\n`);
  process.exitCode = summary.ok ? 0 : 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((error) => {
    process.stdout.write(`${JSON.stringify({ ok: false, steps: [], error: String(error?.stack ?? error) })}\n`);
    process.exit(1);
  });
}
