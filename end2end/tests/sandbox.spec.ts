// The Open Humans sandbox on its own: login, consent, withdrawal with an erasure request, and the
// deauthorization webhook it sends, seen in its delivery log.
import { expect, test } from "@playwright/test";
import { SANDBOX, enroll } from "./support";

test("withdrawing with erasure sends a signed webhook, shown in the delivery log", async ({ page }) => {
  const id = await enroll(page, "carmen");

  await page.goto(`${SANDBOX}/member/me/connections/`);
  await page.getByRole("link", { name: /Withdraw from/ }).first().click();
  await expect(page.getByText(/Are you sure you want to leave the project/)).toBeVisible();
  await page.getByLabel(/Request that .* deletes my data/).check();
  await page.getByRole("button", { name: "Withdraw & revoke authorization" }).click();

  // The platform sends the webhook in the background: reload the log until it shows the signed
  // delivery and then, since ohkit answered it with an error status, the platform's legacy
  // double-encoded retry.
  const rows = page.getByRole("row").filter({ hasText: id });
  const signed = rows.filter({ has: page.getByRole("cell", { name: "signed", exact: true }) });
  const legacy = rows.filter({ has: page.getByRole("cell", { name: "legacy", exact: true }) });
  await expect(async () => {
    await page.goto(`${SANDBOX}/sandbox/webhooks/`);
    await expect(signed).toHaveCount(1, { timeout: 500 });
    await expect(legacy).toHaveCount(1, { timeout: 500 });
  }).toPass({ timeout: 10_000 });
  await expect(signed).toContainText("/openhumans/webhook/");
});

test("the consent page lists what the project asks for", async ({ page }) => {
  // A test user of our own, added through the sandbox's login page: never a member before.
  const username = `newcomer${Date.now()}`;
  await page.goto("/join");
  await page.getByLabel("New username").fill(username);
  await page.getByLabel("Full name").fill("New Comer");
  await page.getByRole("button", { name: "Create test user and log in" }).click();
  await expect(page.getByRole("heading", { name: "Authorize 'Daily Rhythms Study'" })).toBeVisible();
  await expect(page.getByText(/Permission to send you messages/)).toBeVisible();
  await expect(page.getByText(`Access to your Open Humans username, "${username}"`)).toBeVisible();
  await expect(page.getByLabel("Hide membership")).toBeVisible();
  await expect(page.getByRole("button", { name: "Cancel" })).toBeVisible();
});
