// Helpers shared by the browser tests: enrolling through the in-process sandbox, and flipping
// the sandbox's switches the way a project lead would, through its own form.
import { expect, type APIRequestContext, type Page } from "@playwright/test";

export const SANDBOX = "/oh-sandbox";

export interface Switches {
  token_lifetime?: number;
  fault_drop_refresh_response?: boolean;
  fault_error_rate?: number;
  advance_clock?: number;
}

/** Sets the sandbox's switches; anything not given goes back to its default. */
export async function setSwitches(request: APIRequestContext, switches: Switches): Promise<void> {
  const form: Record<string, string> = {
    token_lifetime: String(switches.token_lifetime ?? 36000),
    legacy_webhook_retry: "on",
    fault_error_rate: String(switches.fault_error_rate ?? 0),
    fault_latency_ms: "0",
    advance_clock: String(switches.advance_clock ?? 0),
  };
  if (switches.fault_drop_refresh_response) form.fault_drop_refresh_response = "on";
  const response = await request.post(`${SANDBOX}/sandbox/switches/`, { form, maxRedirects: 0 });
  expect(response.status(), await response.text()).toBeLessThan(400);
}

/**
 * Logs in to the sandbox as `user` if it asks, then authorizes the project on the consent page.
 * A member who still holds an unexpired token is approved without the page, as on Open Humans
 * (`approval_prompt=auto`), and lands back on ohkit at once.
 */
export async function authorizeOnSandbox(page: Page, user: string): Promise<void> {
  const login = page.getByLabel("Test user");
  const consent = page.getByRole("button", { name: "Authorize project" });
  const dashboard = page.getByRole("heading", { name: "Your membership" });
  await expect(login.or(consent).or(dashboard)).toBeVisible();
  if (await login.isVisible()) {
    await login.selectOption(user);
    await page.getByRole("button", { name: "Log in", exact: true }).click();
  }
  await expect(consent.or(dashboard)).toBeVisible();
  if (await consent.isVisible()) await consent.click();
}

/** Joins from the signup page as `user` and lands on the dashboard. */
export async function enroll(page: Page, user: string): Promise<string> {
  await page.goto("/");
  await page.getByRole("link", { name: "Join with Open Humans" }).click();
  await authorizeOnSandbox(page, user);
  await expect(page).toHaveURL(/\/dashboard$/);
  const id = page.getByTestId("project-member-id");
  await expect(id).toHaveText(/^\d{8}$/);
  return (await id.textContent()) ?? "";
}
