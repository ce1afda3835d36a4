// The page's one way to the API: the token from sessionStorage as a bearer header, problem+json as errors.
// The token is never put in a URL, a cookie or localStorage (sessionStorage ends with the tab).

const KEY = "outpost.token";

export const token = {
  get: () => sessionStorage.getItem(KEY),
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export function headers(extra = {}) {
  return { Authorization: `Bearer ${token.get()}`, Accept: "application/json", ...extra };
}

export async function call(method, path, body) {
  const init = { method, headers: headers(), cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/** Every unit of the registry with its live position (the list is paged by id). */
export async function allUnits() {
  const units = [];
  let after = null;
  do {
    const page = await call("GET", `/v1/units?limit=1000${after ? `&after=${encodeURIComponent(after)}` : ""}`);
    units.push(...page.units);
    after = page.next_after;
  } while (after);
  return units;
}

export const ACTIVE_STATES = ["new", "offered", "escalated", "dispatched", "en_route", "on_scene"];

export async function openIncidents() {
  const found = await call("GET", `/v1/incidents?state=${ACTIVE_STATES.join(",")}&limit=1000`);
  return found.incidents;
}

/** The map's settings and who the token belongs to (its role decides which actions the page offers). */
export const mapConfig = () => call("GET", "/v1/map/config");
