// Members joining through the signup page, the sandbox's login and consent, and the dashboard.
import { expect, test } from "@playwright/test";
import { SANDBOX, authorizeOnSandbox, enroll, setSwitches } from "./support";

test.afterEach(async ({ request }) => {
  await setSwitches(request, {});
});

test("a member joins and sees their dashboard", async ({ page }) => {
  await enroll(page, "alice");
  // Hydration faults (an island the WASM does not export, markup that does not match) show up
  // as console errors or uncaught exceptions, not as visible breakage. Watched from here on, on
  // a fresh load of the dashboard: the sandbox's pages before it are not ohkit's.
  const faults: string[] = [];
  page.on("pageerror", (error) => faults.push(error.message));
  page.on("console", (message) => {
    if (message.type() === "error" || message.type() === "warning") {
      faults.push(`${message.text()} ${message.location().url}`);
    }
  });
  page.on("response", (response) => {
    if (response.status() >= 400) faults.push(`${response.status()} ${response.url()}`);
  });
  await page.reload();
  await page.locator("html[data-hydrated]").waitFor({ state: "attached" });
  // Only the dashboard itself is an island; the rest of the page is plain server HTML.
  await expect(page.locator("leptos-island")).toHaveCount(1);
  await expect(page.getByRole("heading", { name: "Your membership" })).toBeVisible();
  await expect(page.getByText("alice", { exact: true })).toBeVisible();
  await expect(page.getByRole("heading", { name: "Files you share" })).toBeVisible();
  await expect(page.getByRole("heading", { name: "direct-sharing-102" })).toBeVisible();
  // Session cookie: HttpOnly, SameSite=Lax; no token ever reaches the page.
  const cookies = await page.context().cookies();
  const session = cookies.find((cookie) => cookie.name === "ohkit_session");
  expect(session?.httpOnly).toBe(true);
  expect(session?.sameSite).toBe("Lax");
  const html = await page.content();
  expect(html).not.toMatch(/access_token|refresh_token/);
  expect(faults).toEqual([]);
});

test("a file downloads through a fresh link", async ({ page }) => {
  await enroll(page, "bob");
  const link = page.locator("a[href^='/files/']").first();
  const name = (await link.textContent()) ?? "";
  const [download] = await Promise.all([page.waitForEvent("download"), link.click()]);
  expect(download.suggestedFilename()).toBe(name);
});

test("cancelling on the consent page explains and offers a way back", async ({ page }) => {
  await page.goto("/");
  await page.getByRole("link", { name: "Join with Open Humans" }).click();
  await page.getByLabel("Test user").selectOption("carmen");
  await page.getByRole("button", { name: "Log in", exact: true }).click();
  await page.getByRole("button", { name: "Cancel" }).click();
  await expect(page).toHaveURL(/\/oauth\/callback\?error=access_denied/);
  await expect(page.getByRole("heading", { name: "You did not join" })).toBeVisible();
  await expect(page.getByRole("link", { name: "Join after all" })).toHaveAttribute("href", "/join");
  await page.goto("/dashboard");
  await expect(page.getByRole("heading", { name: "You are not signed in" })).toBeVisible();
});

test("a replayed callback is refused without touching the session", async ({ page }) => {
  await page.goto("/oauth/callback?code=forged&state=forged");
  await expect(page.getByRole("heading", { name: "Joining did not complete" })).toBeVisible();
  await expect(page.getByRole("alert")).toContainText("does not match your browser session");
});

test("the dashboard keeps working across token expiry", async ({ page, request }) => {
  await setSwitches(request, { token_lifetime: 2 });
  await enroll(page, "dmitri");
  for (let round = 0; round < 3; round++) {
    await page.waitForTimeout(2500);
    await page.reload();
    await expect(page.getByRole("heading", { name: "Files you share" })).toBeVisible();
    await expect(page.getByRole("heading", { name: "Please authorize the project again" })).toHaveCount(0);
  }
});

test("a dropped refresh response leads to the reauthorization prompt", async ({ page, request }) => {
  // Tokens shorter than ohkit's refresh margin: the first dashboard load refreshes, and the
  // sandbox rotates the tokens but drops its answer.
  await setSwitches(request, { token_lifetime: 2, fault_drop_refresh_response: true });
  await enroll(page, "esi");
  await expect(page.getByRole("heading", { name: "Please authorize the project again" })).toBeVisible();
  await setSwitches(request, {});
  await page.getByRole("link", { name: "Authorize again on Open Humans" }).click();
  await authorizeOnSandbox(page, "esi");
  await expect(page).toHaveURL(/\/dashboard$/);
  await expect(page.getByRole("heading", { name: "Files you share" })).toBeVisible();
});

test("upload then delete a returned file, checked on the sandbox", async ({ page }) => {
  await enroll(page, "alice");
  await page.locator("html[data-hydrated]").waitFor({ state: "attached" });
  await page.getByLabel("File").setInputFiles({
    name: "weekly-summary.json",
    mimeType: "application/json",
    buffer: Buffer.from(JSON.stringify({ week: 48, sleep_hours: 7.2 })),
  });
  await page.getByLabel("Description").fill("Week 48 sleep summary");
  await page.getByLabel("Tags, separated by commas").fill("sleep, summary");
  await page.getByRole("button", { name: "Upload" }).click();
  await expect(page.getByRole("status").filter({ hasText: "Uploaded." })).toBeVisible();
  const returned = page.locator("section", { has: page.getByRole("heading", { name: "Files the project returned to you" }) });
  await expect(returned.getByText("weekly-summary.json")).toBeVisible();

  await page.goto(`${SANDBOX}/member/me/data/`);
  await expect(page.getByText("weekly-summary.json")).toBeVisible();

  await page.goto("/dashboard");
  await page.locator("html[data-hydrated]").waitFor({ state: "attached" });
  await page.getByRole("button", { name: "Delete weekly-summary.json" }).click();
  await expect(returned.getByText("weekly-summary.json")).toHaveCount(0);
  await page.goto(`${SANDBOX}/member/me/data/`);
  await expect(page.getByText("weekly-summary.json")).toHaveCount(0);
});

test("a large file goes through the direct upload, with progress", async ({ page }) => {
  await enroll(page, "esi");
  await page.locator("html[data-hydrated]").waitFor({ state: "attached" });
  // Over ohkit's 8 MiB threshold: presigned PUT to storage, then "complete".
  const big = Buffer.alloc(9 * 1024 * 1024, "0123456789abcdef\n");
  await page.getByLabel("File").setInputFiles({ name: "night-recording.csv", mimeType: "text/csv", buffer: big });
  await page.getByLabel("Description").fill("Nine megabytes of night readings");
  await page.getByLabel("Tags, separated by commas").fill("sleep, raw");
  await page.getByRole("button", { name: "Upload" }).click();
  await expect(page.getByRole("status").filter({ hasText: /Uploading… \d+%|Uploaded\./ }).first()).toBeVisible();
  await expect(page.getByRole("status").filter({ hasText: "Uploaded." })).toBeVisible({ timeout: 30_000 });
  await page.goto(`${SANDBOX}/member/me/data/`);
  await expect(page.getByText("night-recording.csv")).toBeVisible();
  await page.goto("/dashboard");
  await page.locator("html[data-hydrated]").waitFor({ state: "attached" });
  await page.getByRole("button", { name: "Delete night-recording.csv" }).click();
  const returned = page.locator("section", { has: page.getByRole("heading", { name: "Files the project returned to you" }) });
  await expect(returned.getByText("night-recording.csv")).toHaveCount(0);
});

test("the browser refuses an upload without a description", async ({ page }) => {
  await enroll(page, "bob");
  await page.locator("html[data-hydrated]").waitFor({ state: "attached" });
  await page.getByLabel("File").setInputFiles({ name: "x.txt", mimeType: "text/plain", buffer: Buffer.from("x") });
  await page.getByLabel("Description").fill("   ");
  await page.getByLabel("Tags, separated by commas").fill("t");
  await page.getByRole("button", { name: "Upload" }).click();
  await expect(page.getByRole("alert")).toHaveText("Please describe the file.");
});

test("logging out ends the session", async ({ page }) => {
  await enroll(page, "carmen");
  await page.getByRole("button", { name: "Log out" }).click();
  await expect(page).toHaveURL(/\/$/);
  await page.goto("/dashboard");
  await expect(page.getByRole("heading", { name: "You are not signed in" })).toBeVisible();
});

test("a newly requested source leads to reauthorization", async ({ page }) => {
  await enroll(page, "bob");
  // The lead adds the 23andMe source on the sandbox's project settings.
  await page.goto(`${SANDBOX}/direct-sharing/projects/oauth2/1001/edit/`);
  await page.getByLabel(/direct-sharing-128/).check();
  await page.getByRole("button", { name: "Save project" }).click();
  await expect(page.getByText("Project saved.")).toBeVisible();
  // The dashboard rereads the project's description after at most five seconds.
  await page.waitForTimeout(5500);
  await page.goto("/dashboard");
  await expect(page.getByRole("heading", { name: "Please authorize the project again" })).toBeVisible();
  await expect(page.getByText(/now also asks for: direct-sharing-128/)).toBeVisible();
  await page.getByRole("link", { name: "Authorize again on Open Humans" }).click();
  await authorizeOnSandbox(page, "bob");
  await expect(page).toHaveURL(/\/dashboard$/);
  // The new snapshot includes the source, so its files reach the project now.
  await expect(page.getByRole("definition").filter({ hasText: "direct-sharing-128" })).toBeVisible();
  await expect(page.getByRole("heading", { name: "Please authorize the project again" })).toHaveCount(0);
  // Put the project back for the other tests.
  await page.goto(`${SANDBOX}/direct-sharing/projects/oauth2/1001/edit/`);
  await page.getByLabel(/direct-sharing-128/).uncheck();
  await page.getByRole("button", { name: "Save project" }).click();
  await expect(page.getByText("Project saved.")).toBeVisible();
  // Once ohkit has reread the description, the dashboard stops asking, and the cached description
  // the other tests see is the original one again.
  await page.waitForTimeout(5500);
  await page.goto("/dashboard");
  await expect(page.getByRole("heading", { name: "Files you share" })).toBeVisible();
  await expect(page.getByRole("heading", { name: "Please authorize the project again" })).toHaveCount(0);
});

test("deleting my data removes me and signs me out", async ({ page }) => {
  const id = await enroll(page, "dmitri");
  await page.getByRole("button", { name: "Delete my data from this project" }).click();
  await expect(page).toHaveURL(/\/\?left=1$/);
  await expect(page.getByRole("status")).toContainText("You have left the project");
  await page.goto("/dashboard");
  await expect(page.getByRole("heading", { name: "You are not signed in" })).toBeVisible();
  expect(id).toMatch(/^\d{8}$/);
});
