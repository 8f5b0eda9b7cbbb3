"""Translates trade.authn.v1 protobuf to the authn domain and back. No business rules here."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc
from trade.authn.v1 import authn_pb2, authn_pb2_grpc

from services.authn.domain.model import ApiKey, IssuedTokens, Role, User
from services.authn.domain.service import Authn
from services.runtime.errors import DomainError, ErrorKind, FieldViolation, invalid_argument
from services.runtime.identity import Principal, principal_from_metadata

_ROLE_TO_PB = {
    Role.VIEWER: authn_pb2.ROLE_VIEWER,
    Role.TRADER: authn_pb2.ROLE_TRADER,
    Role.RISK_MANAGER: authn_pb2.ROLE_RISK_MANAGER,
    Role.ADMIN: authn_pb2.ROLE_ADMIN,
}
_PB_TO_ROLE = {v: k for k, v in _ROLE_TO_PB.items()}

Context = grpc.aio.ServicerContext[Any, Any]


def _roles_from_pb(values: Any, field: str) -> list[Role]:
    roles = []
    for i, value in enumerate(values):
        if value not in _PB_TO_ROLE:
            raise invalid_argument(FieldViolation(f"{field}[{i}]", "unknown or unspecified role"))
        roles.append(_PB_TO_ROLE[value])
    return roles


def _user_pb(user: User) -> authn_pb2.User:
    return authn_pb2.User(
        user_id=user.user_id,
        username=user.username,
        roles=[_ROLE_TO_PB[r] for r in user.roles],
        accounts=list(user.accounts),
        disabled=user.disabled,
        create_time_ns=user.create_time_ns,
    )


def _key_pb(key: ApiKey) -> authn_pb2.ApiKey:
    return authn_pb2.ApiKey(
        key_id=key.key_id,
        user_id=key.user_id,
        label=key.label,
        create_time_ns=key.create_time_ns,
        revoked=key.revoked,
    )


def _tokens_pb(tokens: IssuedTokens) -> authn_pb2.TokenPair:
    return authn_pb2.TokenPair(
        access_token=tokens.access_token,
        token_type="Bearer",
        access_expires_at=tokens.access_expires_at,
        refresh_token=tokens.refresh_token,
        refresh_expires_at=tokens.refresh_expires_at,
    )


def _caller(context: Context) -> Principal:
    principal = principal_from_metadata(context.invocation_metadata())
    if principal is None:
        raise DomainError("UNAUTHENTICATED", "no verified identity on this call", ErrorKind.UNAUTHENTICATED)
    return principal


def _target_user(context: Context, requested: str) -> str:
    """The user an API-key RPC acts on: the caller unless an admin names someone else."""
    caller = _caller(context)
    if requested and requested != caller.user_id and not caller.has_role("admin"):
        raise DomainError("ACCOUNT_NOT_PERMITTED", "only admins manage other users' keys", ErrorKind.PERMISSION_DENIED)
    return requested or caller.user_id


class AuthnServicer(authn_pb2_grpc.AuthnServiceServicer):
    def __init__(self, authn: Authn) -> None:
        self.authn = authn

    async def Login(self, request: authn_pb2.LoginRequest, context: Context) -> authn_pb2.LoginResponse:
        which = request.WhichOneof("credential")
        if which == "password":
            # argon2 verification takes tens of ms: keep it off the event loop.
            user, tokens = await asyncio.to_thread(
                self.authn.login_password, request.password.username, request.password.password
            )
        elif which == "api_key":
            user, tokens = self.authn.login_api_key(request.api_key)
        else:
            raise invalid_argument(FieldViolation("credential", "set password or api_key"))
        return authn_pb2.LoginResponse(tokens=_tokens_pb(tokens), user=_user_pb(user))

    async def Refresh(self, request: authn_pb2.RefreshRequest, context: Context) -> authn_pb2.RefreshResponse:
        return authn_pb2.RefreshResponse(tokens=_tokens_pb(self.authn.refresh(request.refresh_token)))

    async def Logout(self, request: authn_pb2.LogoutRequest, context: Context) -> authn_pb2.LogoutResponse:
        caller = _caller(context)
        await self.authn.logout(caller.token_id, caller.expires_at, request.refresh_token)
        return authn_pb2.LogoutResponse(revoked_jti=caller.token_id)

    async def GetJwks(self, request: authn_pb2.GetJwksRequest, context: Context) -> authn_pb2.GetJwksResponse:
        return authn_pb2.GetJwksResponse(
            jwks_json=json.dumps(self.authn.jwks()), current_kid=self.authn.ring.current.kid
        )

    async def WhoAmI(self, request: authn_pb2.WhoAmIRequest, context: Context) -> authn_pb2.WhoAmIResponse:
        caller = _caller(context)
        return authn_pb2.WhoAmIResponse(
            user_id=caller.user_id,
            username=caller.username,
            roles=[_ROLE_TO_PB[Role(r)] for r in sorted(caller.roles) if r in Role._value2member_map_],
            accounts=sorted(caller.accounts),
            token_id=caller.token_id,
            expires_at=caller.expires_at,
        )

    async def CreateUser(self, request: authn_pb2.CreateUserRequest, context: Context) -> authn_pb2.CreateUserResponse:
        roles = _roles_from_pb(request.roles, "roles")
        user = await asyncio.to_thread(
            self.authn.create_user, request.username, request.password, roles, list(request.accounts)
        )
        return authn_pb2.CreateUserResponse(user=_user_pb(user))

    async def GetUser(self, request: authn_pb2.GetUserRequest, context: Context) -> authn_pb2.GetUserResponse:
        return authn_pb2.GetUserResponse(user=_user_pb(self.authn.get_user(request.user_id)))

    async def ListUsers(self, request: authn_pb2.ListUsersRequest, context: Context) -> authn_pb2.ListUsersResponse:
        users, token = self.authn.list_users(request.page_size, request.page_token)
        return authn_pb2.ListUsersResponse(users=[_user_pb(u) for u in users], next_page_token=token)

    async def SetUserRoles(
        self, request: authn_pb2.SetUserRolesRequest, context: Context
    ) -> authn_pb2.SetUserRolesResponse:
        user = self.authn.set_roles(request.user_id, _roles_from_pb(request.roles, "roles"))
        return authn_pb2.SetUserRolesResponse(user=_user_pb(user))

    async def SetUserAccounts(
        self, request: authn_pb2.SetUserAccountsRequest, context: Context
    ) -> authn_pb2.SetUserAccountsResponse:
        user = self.authn.set_accounts(request.user_id, list(request.accounts))
        return authn_pb2.SetUserAccountsResponse(user=_user_pb(user))

    async def DisableUser(
        self, request: authn_pb2.DisableUserRequest, context: Context
    ) -> authn_pb2.DisableUserResponse:
        return authn_pb2.DisableUserResponse(user=_user_pb(await self.authn.disable_user(request.user_id)))

    async def CreateApiKey(
        self, request: authn_pb2.CreateApiKeyRequest, context: Context
    ) -> authn_pb2.CreateApiKeyResponse:
        key, secret = self.authn.create_api_key(_target_user(context, request.user_id), request.label)
        return authn_pb2.CreateApiKeyResponse(api_key=_key_pb(key), secret=secret)

    async def ListApiKeys(
        self, request: authn_pb2.ListApiKeysRequest, context: Context
    ) -> authn_pb2.ListApiKeysResponse:
        keys = self.authn.list_api_keys(_target_user(context, request.user_id))
        return authn_pb2.ListApiKeysResponse(api_keys=[_key_pb(k) for k in keys])

    async def RevokeApiKey(
        self, request: authn_pb2.RevokeApiKeyRequest, context: Context
    ) -> authn_pb2.RevokeApiKeyResponse:
        key = self.authn.revoke_api_key(_target_user(context, request.user_id), request.key_id)
        return authn_pb2.RevokeApiKeyResponse(api_key=_key_pb(key))

    async def RevokeToken(
        self, request: authn_pb2.RevokeTokenRequest, context: Context
    ) -> authn_pb2.RevokeTokenResponse:
        await self.authn.revoke_token(request.token_id, request.expires_at)
        return authn_pb2.RevokeTokenResponse(token_id=request.token_id)

    async def RotateSigningKeys(
        self, request: authn_pb2.RotateSigningKeysRequest, context: Context
    ) -> authn_pb2.RotateSigningKeysResponse:
        ring = self.authn.rotate_keys()
        return authn_pb2.RotateSigningKeysResponse(
            current_kid=ring.current.kid,
            next_kid=ring.next.kid,
            retired_kids=[k.kid for k in ring.keys if k.status == "retired"],
        )
