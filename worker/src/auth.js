// Per-workspace token the worker requires on every route (issue 19, defect 2).
//
// The token is in one file, root-owned and readable by the workspace user, holding one curl header line
// (`Authorization: Bearer <token>`), so the host's exec transport can send it with `curl -H @file` and the token
// never appears on a command line. The entrypoint writes it from the host-derived token (or a random one).
// No file: the worker is open (standalone use, or PERRY_WORKER_AUTH=none: unsafe, any peer on the bridge may
// read and delete sessions); /health says which in its `auth` field.
import * as fs from "node:fs";
import { createHash, timingSafeEqual } from "node:crypto";

export const DEFAULT_AUTH_FILE = "/etc/perry/worker.auth";
const MAX_AUTH_FILE = 4096;

/** {mode: "token"|"none", digest?: Buffer, error?: string} from the auth file. */
export function loadAuth(file = process.env.PERRY_WORKER_AUTH_FILE || DEFAULT_AUTH_FILE) {
  let text;
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) return { mode: "token", digest: null, error: `${file} is not a regular file` };
    if (st.size > MAX_AUTH_FILE) return { mode: "token", digest: null, error: `${file} is too large` };
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    if (err?.code === "ENOENT") return { mode: "none" };
    // Present but unreadable: fail closed, never open.
    return { mode: "token", digest: null, error: `cannot read ${file}: ${err?.code ?? err}` };
  }
  const m = text.match(/^\s*authorization\s*:\s*bearer\s+(\S+)\s*$/im);
  if (!m) return { mode: "token", digest: null, error: `${file} holds no "Authorization: Bearer <token>" line` };
  return { mode: "token", digest: digest(m[1]) };
}

function digest(text) {
  return createHash("sha256").update(text, "utf8").digest();
}

/** Whether the request carries the token (compared in constant time over SHA-256 digests). */
export function authorized(auth, req) {
  if (auth.mode === "none") return true;
  if (!auth.digest) return false; // fail closed: the file was there but unusable
  const h = req.headers.get("authorization") || "";
  const m = h.match(/^\s*bearer\s+(\S+)\s*$/i);
  if (!m) return false;
  return timingSafeEqual(digest(m[1]), auth.digest);
}
