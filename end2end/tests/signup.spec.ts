// The signup page: rendered on the server, then made interactive by the WASM client.
import { expect, test } from "@playwright/test";

test("the signup page shows the project as Open Humans describes it", async ({ page }) => {
  const response = await page.goto("/");
  expect(response?.status()).toBe(200);
  // The in-process sandbox's seeded project, read from the project info endpoint.
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("Daily Rhythms Study");
  await expect(
    page.getByText("Led by Dr. Ada Okafor, Chronobiology Group, Example University"),
  ).toBeVisible();
  await expect(page.getByRole("link", { name: "Join with Open Humans" })).toHaveAttribute("href", "/join");
});

test("the requests toggle works once hydrated and loads the list from the server", async ({
  page,
}) => {
  const serverCalls: string[] = [];
  page.on("request", (request) => {
    if (request.url().includes("/api/project-requests")) serverCalls.push(request.method());
  });
  await page.goto("/");
  const toggle = page.getByRole("button", { name: "What will this project ask for?" });
  await expect(toggle).toHaveAttribute("aria-expanded", "false");
  // The client marks the document once it has hydrated.
  await expect(page.locator("html[data-hydrated]")).toHaveCount(1);
  await toggle.click();
  const list = page.getByRole("list").filter({ has: page.getByText("Permission to send you messages") });
  await expect(list).toBeVisible();
  await expect(list.getByRole("listitem")).toHaveCount(5);
  await expect(list).toContainText("Access to your Open Humans username");
  await expect(list).toContainText("direct-sharing-102");
  await expect(page.getByRole("button", { name: "Hide what this project asks for" })).toHaveAttribute(
    "aria-expanded",
    "true",
  );
  expect(serverCalls).toEqual(["POST"]);
});

test("without the WASM client the toggle stays inert", async ({ page }) => {
  await page.route("**/*.wasm", (route) => route.abort());
  await page.goto("/");
  const toggle = page.getByRole("button", { name: "What will this project ask for?" });
  await toggle.click();
  await page.waitForTimeout(1000);
  await expect(page.locator("html[data-hydrated]")).toHaveCount(0);
  await expect(toggle).toHaveAttribute("aria-expanded", "false");
  await expect(page.locator("#project-requests")).toBeHidden();
});

test("unknown paths answer 404 with a way back", async ({ page }) => {
  const response = await page.goto("/no-such-page");
  expect(response?.status()).toBe(404);
  await expect(page.getByRole("heading", { name: "Page not found" })).toBeVisible();
  await expect(page.getByRole("link", { name: "Go to the project's signup page" })).toBeVisible();
});

test("health and readiness endpoints answer", async ({ request }) => {
  expect((await request.get("/healthz")).status()).toBe(200);
  const ready = await request.get("/readyz");
  expect(ready.status()).toBe(200);
  expect(await ready.text()).toBe("ready");
});
