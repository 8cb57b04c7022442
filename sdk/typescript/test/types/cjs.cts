import sdk = require("@reauth/sdk");
import nextSdk = require("@reauth/sdk/next");
import expressSdk = require("@reauth/sdk/express");

const client: sdk.ReauthClient = sdk.createReauth({ url: "http://127.0.0.1:1" });
export const fns = [client.getUser, nextSdk.reauthMiddleware, nextSdk.getUserFromHeaders, expressSdk.reauth, expressSdk.requireUser];
export type U = sdk.ReauthUser;
