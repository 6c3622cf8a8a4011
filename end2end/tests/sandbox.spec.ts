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

  await page.goto(`${SANDBOX}/sandbox/webhooks/`);
  const row = page.getByRole("row").filter({ hasText: id }).first();
  await expect(row).toBeVisible();
  await expect(row).toContainText("/openhumans/webhook/");
  await expect(row).toContainText(/signed/i);
});

test("the consent page lists what the project asks for", async ({ page }) => {
  await page.goto("/join");
  await page.getByLabel("Test user").selectOption("esi");
  await page.getByRole("button", { name: "Log in", exact: true }).click();
  await expect(page.getByRole("heading", { name: "Authorize 'Daily Rhythms Study'" })).toBeVisible();
  await expect(page.getByText("Permission to send you messages.")).toBeVisible();
  await expect(page.getByText(/Access to your Open Humans username, "esi"/)).toBeVisible();
  await expect(page.getByLabel("Hide membership")).toBeVisible();
  await expect(page.getByRole("button", { name: "Cancel" })).toBeVisible();
});
