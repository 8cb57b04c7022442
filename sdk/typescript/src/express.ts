// Express integration (Express 4 and 5). Only types are imported from express.
import type { NextFunction, Request, RequestHandler, Response } from "express";
import { createReauth, type ReauthClient } from "./client.js";
import type { ReauthOptions, ReauthUser } from "./types.js";

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /**
       * Set by the `reauth()` middleware: the signed-in user, or `null`.
       * `undefined` when the middleware did not run.
       */
      user?: ReauthUser | null;
    }
  }
}

const clients = new WeakMap<object, ReauthClient>();

function isClient(x: unknown): x is ReauthClient {
  return typeof x === "object" && x !== null && typeof (x as ReauthClient).getUser === "function";
}

export type ReauthExpressMiddleware = RequestHandler & { readonly client: ReauthClient };

/**
 * Middleware that sets `req.user` to the signed-in user or `null`. Errors
 * talking to the auth server (`ReauthError` with code `unavailable`/`timeout`,
 * status 503/504) go to `next(err)`.
 */
export function reauth(options: ReauthOptions | ReauthClient): ReauthExpressMiddleware {
  const client = isClient(options) ? options : createReauth(options);
  const middleware = function reauthExpressMiddleware(req: Request, _res: Response, next: NextFunction): void {
    clients.set(req, client);
    client.getUser(req).then(
      (user) => {
        req.user = user;
        next();
      },
      (err: unknown) => next(err),
    );
  } as ReauthExpressMiddleware;
  Object.defineProperty(middleware, "client", { value: client, enumerable: true });
  return middleware;
}

export interface RequireUserOptions {
  /** URL to come back to after login. Default: the full URL of the request. */
  returnTo?: (req: Request) => string;
}

function wantsHtml(req: Request): boolean {
  // Browsers navigating send `text/html` ahead of `*/*`; API clients (JSON,
  // `*/*`, or no Accept header) get the 401 JSON answer.
  return req.accepts(["json", "html"]) === "html";
}

/**
 * Guard for routes that need a signed-in user; mount after `reauth()`.
 * Not signed in → HTML requests are redirected (302) to the hosted login,
 * other requests get 401 `{"error":{"code":"unauthenticated","message":...}}`.
 */
export function requireUser(options: RequireUserOptions = {}): RequestHandler {
  return function reauthRequireUser(req: Request, res: Response, next: NextFunction): void {
    const client = clients.get(req);
    if (!client || req.user === undefined) {
      next(new Error("reauth: requireUser() needs the reauth() middleware mounted before it"));
      return;
    }
    if (req.user) {
      next();
      return;
    }
    res.vary("Accept");
    if (wantsHtml(req)) {
      const returnTo = options.returnTo
        ? options.returnTo(req)
        : `${req.protocol}://${req.get("host") ?? "localhost"}${req.originalUrl}`;
      res.redirect(302, client.loginUrl(returnTo));
      return;
    }
    res.status(401).json({ error: { code: "unauthenticated", message: "Sign in to continue" } });
  };
}

export { ReauthError } from "./errors.js";
export type { ReauthUser } from "./types.js";
