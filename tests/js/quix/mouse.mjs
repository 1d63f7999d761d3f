// Two pages in headless Chromium: reader.html subscribes, writer.html sends simulated mouse moves.
// Usage: node mouse.mjs <page origin> <gateway url> <token> <topic> <moves>
// Prints {"sent": [...], "events": [...], "packages": [...]} (texts of the pages' lists).
import { chromium } from "playwright-core";

const [origin, hub, token, topic, moves] = process.argv.slice(2);
const count = Number(moves);
const query = new URLSearchParams({ hub, token, topic }).toString();
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run", "--disable-sync", "--disable-quic"],
});
const texts = (page, selector) => page.$$eval(selector, (items) => items.map((li) => li.textContent));
try {
  const reader = await browser.newPage();
  await reader.goto(`${origin}/quix/reader.html?${query}`);
  await reader.waitForSelector("#status[data-ready], #status[data-error]", { timeout: 30000 });
  const writer = await browser.newPage();
  await writer.setViewportSize({ width: 800, height: 600 });
  await writer.goto(`${origin}/quix/writer.html?${query}`);
  await writer.waitForSelector("#status[data-ready], #status[data-error]", { timeout: 30000 });
  for (let i = 1; i <= count; i++) {
    await writer.mouse.move(20 * i, 10 * i + 5);
    // wait for this move's SendEventData to complete so each move is one event
    await writer.waitForFunction((n) => document.querySelectorAll("#sent li").length >= n || document.querySelector("#status[data-error]"), i, { timeout: 30000 });
  }
  await reader.waitForFunction(
    (n) => (document.querySelectorAll("#events li").length >= n && document.querySelectorAll("#packages li").length >= n) || document.querySelector("#status[data-error]"),
    count,
    { timeout: 30000 },
  );
  const result = {
    writerStatus: await writer.textContent("#status"),
    readerStatus: await reader.textContent("#status"),
    sent: await texts(writer, "#sent li"),
    events: await texts(reader, "#events li"),
    packages: await texts(reader, "#packages li"),
  };
  process.stdout.write(JSON.stringify(result) + "\n");
} finally {
  await browser.close();
}
