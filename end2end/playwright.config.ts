// Playwright settings for ohkit's browser tests. `cargo leptos end-to-end` builds and starts the
// server, then runs this suite against it in Debian's Chromium (no browser is downloaded).
import { defineConfig, devices } from "@playwright/test";

const baseURL = process.env.OHKIT_E2E_BASE_URL ?? "http://127.0.0.1:3000";

export default defineConfig({
  testDir: "./tests",
  globalSetup: "./global-setup.ts",
  timeout: 30_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  forbidOnly: !!process.env.CI,
  retries: process.env.CI ? 1 : 0,
  reporter: [["list"]],
  use: {
    baseURL,
    trace: "on-first-retry",
  },
  projects: [
    {
      name: "chromium",
      use: {
        ...devices["Desktop Chrome"],
        launchOptions: {
          executablePath: process.env.OHKIT_CHROMIUM ?? "/usr/bin/chromium",
          // The machine has no route to the internet: without these flags Chromium keeps
          // trying to reach its update and sync services.
          args: [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
          ],
        },
      },
    },
  ],
});
