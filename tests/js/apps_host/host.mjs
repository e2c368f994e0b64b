// A minimal MCP Apps host page, on the official host bridge (@modelcontextprotocol/ext-apps/app-bridge).
//
// It does what a host does once the model has called a tool that carries `_meta.ui.resourceUri`: it renders the
// tool's ui:// resource in a sandboxed iframe (srcdoc, scripts only, an opaque origin) under the Content-Security-
// Policy the resource declares, connects an AppBridge to it over postMessage, sends the tool's input and result, and
// then serves the app: its tools/call and resources/* go to the MCP server through `window.mcpRequest` (a Playwright
// binding into the Node driver, which holds the MCP client); ui/update-model-context and ui/message are recorded in
// `window.hostLog` (what the model would see next turn) and acknowledged, as is any message that is not JSON-RPC
// ("stray-message"). The driver bundles this file with esbuild.

import { AppBridge, PostMessageTransport } from "@modelcontextprotocol/ext-apps/app-bridge";

const hostLog = [];
const hostState = { initialized: false, appInfo: null, sizes: [], errors: [], csp: null };
window.hostLog = hostLog;
window.hostState = hostState;

function record(kind, data) {
  hostLog.push({ kind, at: Date.now(), ...data });
}

// Anything posted to the host that is not JSON-RPC 2.0 (the bridge's own traffic) is recorded as a stray message: a
// script that should never have run in the app (markup in a file's name, say) would show up here.
window.addEventListener("message", (event) => {
  const data = event.data;
  if (data && typeof data === "object" && data.jsonrpc === "2.0") return;
  let text;
  try {
    text = typeof data === "string" ? data : JSON.stringify(data);
  } catch {
    text = String(data);
  }
  record("stray-message", { data: String(text).slice(0, 500), origin: event.origin });
});

// A source the CSP may name: a scheme and host (with an optional leading "*." and port), nothing that could end a
// directive or break out of the attribute. Anything else is dropped and reported.
const SOURCE = /^(https?|wss?):\/\/(\*\.)?[A-Za-z0-9.-]+(:(\d{1,5}|\*))?\/?$/;

function sources(list, dropped) {
  const kept = [];
  for (const entry of Array.isArray(list) ? list : []) {
    if (typeof entry === "string" && SOURCE.test(entry)) kept.push(entry);
    else dropped.push(entry);
  }
  return kept;
}

/** The policy the ext-apps spec has hosts apply from a resource's `_meta.ui.csp` (restrictive when absent). */
export function buildCsp(csp) {
  const dropped = [];
  const resources = sources(csp?.resourceDomains, dropped);
  const connect = sources(csp?.connectDomains, dropped);
  const frames = sources(csp?.frameDomains, dropped);
  const bases = sources(csp?.baseUriDomains, dropped);
  const join = (...parts) => parts.flat().join(" ");
  const policy = [
    "default-src 'none'",
    `script-src ${join("'self'", "'unsafe-inline'", resources)}`,
    `style-src ${join("'self'", "'unsafe-inline'", resources)}`,
    `img-src ${join("'self'", "data:", resources)}`,
    `font-src ${join("'self'", resources)}`,
    `media-src ${join("'self'", "data:", resources)}`,
    `connect-src ${connect.length ? join(connect) : "'none'"}`,
    `frame-src ${frames.length ? join(frames) : "'none'"}`,
    "object-src 'none'",
    `base-uri ${bases.length ? join(bases) : "'self'"}`,
  ].join("; ");
  return { policy, dropped };
}

/** The app's HTML with the policy as the first element of its <head> (a <head> is made when it has none). */
export function withCsp(html, policy) {
  const meta = `<meta http-equiv="Content-Security-Policy" content="${policy}">`;
  const head = /<head(\s[^>]*)?>/i.exec(html);
  if (head) {
    const at = head.index + head[0].length;
    return html.slice(0, at) + meta + html.slice(at);
  }
  const root = /<html(\s[^>]*)?>/i.exec(html);
  if (root) {
    const at = root.index + root[0].length;
    return html.slice(0, at) + `<head>${meta}</head>` + html.slice(at);
  }
  return `<head>${meta}</head>` + html;
}

async function forward(method, params) {
  if (typeof window.mcpRequest !== "function") throw new Error("no MCP connection (window.mcpRequest is missing)");
  return window.mcpRequest(method, params ?? {});
}

/**
 * Render an app and hand it a tool call: `{html, csp, tool, toolArguments, toolResult}`. Resolves once the app has
 * sent ui/notifications/initialized and been given the tool's input and result.
 */
window.startApp = async ({ html, csp, tool, toolArguments, toolResult }) => {
  const { policy, dropped } = buildCsp(csp);
  hostState.csp = { policy, dropped };
  if (dropped.length) console.warn("host: CSP sources dropped (not a scheme://host[:port]):", JSON.stringify(dropped));

  const iframe = document.createElement("iframe");
  iframe.id = "app";
  iframe.title = "MCP App";
  iframe.setAttribute("sandbox", "allow-scripts");
  document.getElementById("slot").append(iframe);

  const bridge = new AppBridge(
    null,
    { name: "media-mcp-test-host", version: "1.0.0" },
    {
      serverTools: {},
      serverResources: {},
      updateModelContext: { text: {}, structuredContent: {} },
      message: { text: {} },
      openLinks: {},
      logging: {},
    },
    {
      hostContext: {
        toolInfo: tool ? { tool } : undefined,
        theme: "light",
        displayMode: "inline",
        availableDisplayModes: ["inline"],
        containerDimensions: { maxHeight: 2000, width: iframe.clientWidth || 900 },
        locale: "en-US",
        timeZone: "UTC",
        platform: "web",
        deviceCapabilities: { touch: false, hover: true },
      },
    },
  );

  bridge.oncalltool = async (params) => {
    record("tools/call", { name: params.name, arguments: params.arguments ?? {} });
    const result = await forward("tools/call", params);
    record("tools/result", { name: params.name, isError: Boolean(result?.isError) });
    return result;
  };
  bridge.onreadresource = async (params) => {
    record("resources/read", { uri: params.uri });
    return forward("resources/read", params);
  };
  bridge.onlistresources = async (params) => forward("resources/list", params);
  bridge.onlistresourcetemplates = async (params) => forward("resources/templates/list", params);
  bridge.onupdatemodelcontext = async (params) => {
    record("update-model-context", { params });
    return {};
  };
  bridge.onmessage = async (params) => {
    record("message", { params });
    return {};
  };
  bridge.onopenlink = async (params) => {
    record("open-link", { url: params.url });
    return {}; // recorded, never opened
  };
  bridge.onrequestdisplaymode = async (params) => {
    record("request-display-mode", { mode: params.mode });
    return { mode: "inline" };
  };
  bridge.onloggingmessage = (params) => record("log", { params });
  bridge.onrequestteardown = (params) => record("request-teardown", { params });
  bridge.onsizechange = ({ width, height }) => {
    hostState.sizes.push({ width, height });
    if (typeof height === "number" && height > 0) iframe.style.height = `${Math.ceil(height)}px`;
  };

  const initialized = new Promise((resolve) => {
    bridge.oninitialized = () => {
      hostState.initialized = true;
      hostState.appInfo = bridge.getAppVersion() ?? null;
      resolve();
    };
  });
  // Listen before the document loads, so that the app's ui/initialize cannot be missed.
  await bridge.connect(new PostMessageTransport(iframe.contentWindow, iframe.contentWindow));
  iframe.srcdoc = withCsp(html, policy);
  await initialized;
  await bridge.sendToolInput({ arguments: toolArguments ?? {} });
  await bridge.sendToolResult(toolResult);
  hostState.toolResultSent = true;
  window.appBridge = bridge;
  return { policy, dropped, appInfo: hostState.appInfo };
};
