// Drives the real @microsoft/signalr Node client against a server under test.
// Usage: node client.mjs '<json config>'   config: {url, transport, protocol, token, scenario}
// Prints one JSON object per line: {"event": ..., ...}; the last line is {"event":"done", "results": {...}}.
import * as signalR from "@microsoft/signalr";
import { MessagePackHubProtocol } from "@microsoft/signalr-protocol-msgpack";

const config = JSON.parse(process.argv[2]);
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

function build(extra = {}) {
  const options = { transport: signalR.HttpTransportType[config.transport], ...extra };
  if (config.token) options.accessTokenFactory = () => config.token;
  let builder = new signalR.HubConnectionBuilder()
    .withUrl(config.url, options)
    .configureLogging(signalR.LogLevel.Warning);
  if (config.protocol === "messagepack") builder = builder.withHubProtocol(new MessagePackHubProtocol());
  if (config.reconnect) builder = builder.withAutomaticReconnect([0, 300, 500, 1000, 1000, 1000, 2000, 2000, 2000]);
  return builder.build();
}

async function settle(promise) {
  try {
    return { ok: await promise };
  } catch (err) {
    return { error: String(err && err.message ? err.message : err) };
  }
}

function nextMessage(connection, target) {
  return new Promise((resolve) => {
    const handler = (...args) => {
      connection.off(target, handler);
      resolve(args);
    };
    connection.on(target, handler);
  });
}

async function basic() {
  const connection = build();
  const results = {};
  let closedWith = "not closed";
  connection.onclose((err) => { closedWith = err ? String(err.message) : null; });
  await connection.start();
  results.connectionId = connection.connectionId;
  results.echo = await settle(connection.invoke("Echo", { text: "héllo", n: [1, 2.5, null] }));
  results.echoCase = await settle(connection.invoke("eChO", "any case"));
  results.add = await settle(connection.invoke("Add", 40, 2));
  results.points = await settle(connection.invoke("AddPoints", { x: 1, y: 2 }, { x: 10, y: 20 }));
  results.hubError = await settle(connection.invoke("ThrowHubError", "Something bad"));
  results.other = await settle(connection.invoke("ThrowOther"));
  results.unknown = await settle(connection.invoke("NoSuchMethod", 1));
  results.badCount = await settle(connection.invoke("Add", 1));
  results.badType = await settle(connection.invoke("Add", "one", 2));
  results.voidResult = await settle(connection.invoke("Void"));
  results.transport = await settle(connection.invoke("GetTransport"));
  results.principal = await settle(connection.invoke("GetPrincipal"));
  const pushed = nextMessage(connection, "Pushed");
  await connection.send("Push", "Pushed", "via send");
  results.push = await pushed;
  results.sendUnknown = await settle(connection.send("NoSuchMethod"));
  results.afterSend = await settle(connection.invoke("Echo", "still alive"));
  // server-to-client stream
  results.stream = await new Promise((resolve) => {
    const items = [];
    connection.stream("Counter", 4).subscribe({
      next: (item) => items.push(item),
      complete: () => resolve({ items }),
      error: (err) => resolve({ items, error: String(err.message) }),
    });
  });
  results.streamError = await new Promise((resolve) => {
    const items = [];
    connection.stream("StreamThrow", "stream broke").subscribe({
      next: (item) => items.push(item),
      complete: () => resolve({ items }),
      error: (err) => resolve({ items, error: String(err.message) }),
    });
  });
  // client-to-server stream
  const subject = new signalR.Subject();
  const concat = connection.invoke("Concat", subject);
  for (const part of ["a", "b", "c"]) subject.next(part);
  subject.complete();
  results.upload = await settle(concat);
  await connection.stop();
  results.closedWith = closedWith;
  return results;
}

async function reconnect() {
  const connection = build();
  const results = { reconnecting: null, reconnected: null };
  const reconnected = new Promise((resolve) => {
    connection.onreconnecting((err) => { results.reconnecting = err ? String(err.message) : null; });
    connection.onreconnected((id) => { results.reconnected = id; resolve(); });
  });
  connection.onclose((err) => { results.closed = err ? String(err.message) : null; });
  await connection.start();
  results.firstId = connection.connectionId;
  results.before = await settle(connection.invoke("Echo", "before"));
  emit({ event: "ready" });
  await reconnected;
  results.after = await settle(connection.invoke("Echo", "after"));
  results.secondId = connection.connectionId;
  await connection.stop();
  return results;
}

async function failStart() {
  const connection = build();
  return { start: await settle(connection.start()) };
}

async function abort() {
  const connection = build();
  const results = {};
  const closed = new Promise((resolve) => connection.onclose((err) => resolve(err ? String(err.message) : null)));
  connection.onreconnecting(() => { results.reconnecting = true; });
  await connection.start();
  results.call = await settle(connection.invoke("Abort"));
  results.closed = await closed;
  results.state = connection.state;
  return results;
}

// Client results: the server invokes a handler of ours and waits for what it returns (§12).
async function clientResults() {
  const connection = build();
  connection.on("Add", (a, b) => a + b);
  connection.on("AddLater", async (a, b) => {
    await new Promise((resolve) => setTimeout(resolve, 50));
    return a + b;
  });
  connection.on("Fail", () => { throw new Error("nope"); });
  connection.on("Text", () => "not a number");
  await connection.start();
  const results = {};
  results.add = await settle(connection.invoke("AskClient", "Add", 2, 3, 10));
  results.later = await settle(connection.invoke("AskClient", "AddLater", 20, 22, 10));
  results.fail = await settle(connection.invoke("AskClient", "Fail", 0, 0, 10));
  results.missing = await settle(connection.invoke("AskClient", "NoHandler", 0, 0, 10));
  results.badType = await settle(connection.invoke("AskClient", "Text", 0, 0, 10));
  results.after = await settle(connection.invoke("Echo", "still alive"));
  await connection.stop();
  return results;
}

const scenarios = { basic, reconnect, failStart, abort, clientResults };

try {
  const results = await scenarios[config.scenario]();
  emit({ event: "done", results });
  process.exit(0);
} catch (err) {
  emit({ event: "failed", error: String(err && err.stack ? err.stack : err) });
  process.exit(1);
}
