// Drives the Quix Writer and Reader hubs with the real @microsoft/signalr client under Node.
//
//   node hubs.mjs scenario '{"url":"http://127.0.0.1:8080","token":"...","protocol":"json","topic":"cars"}'
//   node hubs.mjs read '{"url":...,"token":...,"protocol":"json","topic":"cars","subscribe":[["SubscribeToEvent","cars","*","*"]],"expect":{"EventDataReceived":2}}'
//   node hubs.mjs invoke '{"url":...,"hub":"writer","calls":[["SendParameterData","cars","s",{...}]]}'
//
// Nanosecond times are JavaScript numbers (doubles): JSON writes their shortest decimal form,
// MessagePack the float64 itself; the tests expect exactly that.
// Prints one JSON object on stdout (and "ready" on its own line first for `read`).
import * as signalR from "@microsoft/signalr";
import { MessagePackHubProtocol } from "@microsoft/signalr-protocol-msgpack";

const [command, raw] = process.argv.slice(2);
const cfg = JSON.parse(raw);
const TARGETS = [
  "ParameterDataReceived",
  "EventDataReceived",
  "PackageReceived",
  "ActiveStreamsChanged",
  "TopicMetricsUpdated",
  "ParameterDefinitionsUpdated",
  "EventDefinitionsUpdated",
];

function connect(hub) {
  let builder = new signalR.HubConnectionBuilder()
    .withUrl(`${cfg.url}/${hub}/hub`, { accessTokenFactory: () => cfg.token })
    .configureLogging(signalR.LogLevel.Warning);
  if (cfg.protocol === "msgpack") builder = builder.withHubProtocol(new MessagePackHubProtocol());
  return builder.build();
}

function collector(connection) {
  const got = Object.fromEntries(TARGETS.map((t) => [t, []]));
  let wake = () => {};
  for (const target of TARGETS) {
    connection.on(target, (...args) => {
      got[target].push(args.length === 1 ? args[0] : args);
      wake();
    });
  }
  const waitFor = (expect, ms = 20000) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`timed out waiting for ${JSON.stringify(expect)}; got ${JSON.stringify(Object.fromEntries(Object.entries(got).map(([k, v]) => [k, v.length])))}`)),
        ms,
      );
      wake = () => {
        if (Object.entries(expect).every(([t, n]) => got[t].length >= n)) {
          clearTimeout(timer);
          resolve(got);
        }
      };
      wake();
    });
  return { got, waitFor };
}

async function attempt(promise) {
  try {
    return { result: (await promise) ?? null };
  } catch (err) {
    return { error: String(err.message ?? err) };
  }
}

function bigintSafe(key, value) {
  return typeof value === "bigint" ? Number(value) : value;
}

async function scenario() {
  const topic = cfg.topic;
  const reader = connect("reader");
  const writer = connect("writer");
  const { got, waitFor } = collector(reader);
  await reader.start();
  await writer.start();
  const out = {};
  out.activeBefore = await reader.invoke("SubscribeToActiveStreams", topic);
  await reader.invoke("SubscribeToParameter", topic, "*", "speed");
  await reader.invoke("SubscribeToEvent", topic, "*", "*");
  await reader.invoke("SubscribeToTopicPackages", topic);
  await reader.invoke("SubscribeToParameterDefinitions", topic, "*");
  const ts = 1700000000000000000;
  const { streamId } = await writer.invoke("CreateStream", topic, { name: "car 1", location: "/cars", metadata: { team: "red" } });
  out.streamId = streamId;
  await writer.invoke("SendParameterDefinitions", topic, streamId, [{ id: "speed", name: "Speed", unit: "km/h", location: "/car" }]);
  await writer.invoke("SendParameterData", topic, streamId, {
    timestamps: [ts, ts + 1024],
    numericValues: { speed: [100.5, 101], rpm: [9000, 9100] },
    stringValues: { gear: ["3", "4"] },
    tagValues: { driver: ["A", "A"] },
  });
  await writer.invoke("SendEventData", topic, streamId, [
    { id: "Alert", timestamp: ts, value: "Help", tags: { capacity: "over" } },
    { id: "Lap", timestamp: ts + 2048, value: "1" },
  ]);
  await writer.invoke("SendEventData", topic, streamId, { Id: "Pit", Timestamp: ts + 3072, Value: "in" });
  out.update3 = await writer.invoke("UpdateStream", topic, streamId, { name: "car 1b" });
  out.update2 = await writer.invoke("UpdateStream", topic, { name: "fresh" });
  await writer.invoke("CloseStream", topic, streamId);
  await waitFor({ ParameterDataReceived: 1, EventDataReceived: 3, PackageReceived: 8, ActiveStreamsChanged: 4, ParameterDefinitionsUpdated: 1 });
  out.activeAfter = await reader.invoke("SubscribeToActiveStreams", topic);
  out.metrics = await reader.invoke("SubscribeToTopicMetrics", topic);
  await reader.invoke("UnsubscribeFromEvent", topic, "*", "*");
  await writer.invoke("SendEventData", topic, streamId, [{ id: "Late", timestamp: ts + 4096, value: "x" }]);
  await waitFor({ PackageReceived: 9 });
  out.got = got;
  await writer.stop();
  await reader.stop();
  return out;
}

async function read() {
  const reader = connect("reader");
  const { got, waitFor } = collector(reader);
  await reader.start();
  const results = [];
  for (const [method, ...args] of cfg.subscribe) results.push(await attempt(reader.invoke(method, ...args)));
  process.stdout.write("ready\n");
  if (results.some((r) => r.error)) {
    await reader.stop();
    return { results, got };
  }
  await waitFor(cfg.expect, cfg.timeout_ms ?? 20000);
  await reader.stop();
  return { results, got };
}

async function invoke() {
  const connection = connect(cfg.hub);
  await connection.start();
  const results = [];
  for (const [method, ...args] of cfg.calls) results.push(await attempt(connection.invoke(method, ...args)));
  await connection.stop();
  return { results };
}

const commands = { scenario, read, invoke };
try {
  const result = await commands[command]();
  process.stdout.write(JSON.stringify(result, bigintSafe) + "\n");
  process.exit(0);
} catch (err) {
  process.stderr.write(`${err.stack ?? err}\n`);
  process.exit(1);
}
