// Opens a page in headless Chromium (Debian's /usr/bin/chromium) and prints the text of #result.
// Usage: node browser.mjs <page url>
import { chromium } from "playwright-core";

const url = process.argv[2];
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run", "--disable-sync", "--disable-quic"],
});
try {
  const page = await browser.newPage();
  const consoleLines = [];
  page.on("console", (msg) => consoleLines.push(msg.text()));
  await page.goto(url);
  await page.waitForSelector("#result[data-done]", { timeout: 30000 });
  const text = await page.textContent("#result");
  process.stdout.write(JSON.stringify({ result: JSON.parse(text), console: consoleLines }) + "\n");
} finally {
  await browser.close();
}
