"""The emulator's OAuth: rotating refresh tokens (Intuit's 24-hour grace, or strict),
client checks, access tokens bound to one
realm that expire, and the 401 body QuickBooks' gateway sends."""

from __future__ import annotations

import asyncio

import httpx

from qbsync.emulator import EmulatorConfig, RunningEmulator, running_emulator
from tests.support.polling import eventually
from tests.support.qbo import qbo_client


async def refresh(
    emulator: RunningEmulator, token: str, auth: tuple[str, str] | None = None
) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(
            emulator.token_url,
            data={"grant_type": "refresh_token", "refresh_token": token},
            auth=auth or (emulator.client_id, emulator.client_secret),
            headers={"Accept": "application/json"},
        )


async def test_refresh_tokens_rotate_and_the_previous_one_answers_the_newest(
    emulator: RunningEmulator,
) -> None:
    """Intuit: "Your previous refresh tokens expire 24 hours after you receive a new one"."""
    first = await refresh(emulator, emulator.refresh_token)
    assert first.status_code == 200
    grant = first.json()
    assert set(grant) == {
        "access_token",
        "refresh_token",
        "token_type",
        "expires_in",
        "x_refresh_token_expires_in",
    }
    assert grant["token_type"] == "bearer" and grant["expires_in"] == 3600
    assert grant["refresh_token"] != emulator.refresh_token

    reused = await refresh(emulator, emulator.refresh_token)
    assert reused.status_code == 200
    assert reused.json()["refresh_token"] == grant["refresh_token"]  # the chain never forks
    assert reused.json()["access_token"] != grant["access_token"]
    unknown = await refresh(emulator, "never-issued")
    assert (unknown.status_code, unknown.json()) == (400, {"error": "invalid_grant"})

    rotated = await refresh(emulator, grant["refresh_token"])
    assert rotated.status_code == 200
    assert rotated.json()["refresh_token"] not in (grant["refresh_token"], emulator.refresh_token)


async def test_strict_rotation_refuses_the_previous_refresh_token(
    emulator: RunningEmulator,
) -> None:
    settings = await emulator.admin.token_rotation(previous_token_seconds=0)
    assert settings["previous_token_seconds"] == 0
    first = await refresh(emulator, emulator.refresh_token)
    assert first.status_code == 200
    reused = await refresh(emulator, emulator.refresh_token)
    assert (reused.status_code, reused.json()) == (400, {"error": "invalid_grant"})
    assert (await refresh(emulator, first.json()["refresh_token"])).status_code == 200


async def test_held_token_answers_are_applied_at_once_and_answered_on_release(
    emulator: RunningEmulator,
) -> None:
    await emulator.admin.token_rotation(previous_token_seconds=0, hold_answers=True)
    held = asyncio.create_task(refresh(emulator, emulator.refresh_token))

    async def one_held() -> bool:
        return (await emulator.admin.token_rotation())["held"] == 1

    await eventually(one_held, timeout=10, what="the refresh to be held")
    # Rotated already: the refresh token the held request spent is dead (strict mode).
    assert (await refresh(emulator, emulator.refresh_token)).status_code == 400
    assert await emulator.admin.release_token_answers() == 1
    answer = await asyncio.wait_for(held, 10)
    assert answer.status_code == 200
    assert (await emulator.admin.token_rotation())["hold_answers"] is False


async def test_bad_rotation_settings_are_refused(emulator: RunningEmulator) -> None:
    async with httpx.AsyncClient() as http:
        for body in ({"previous_token_seconds": -1}, {"hold_answers": 1}, {"nope": 1}):
            answer = await http.put(emulator.base_url + "/_emulator/oauth", json=body)
            assert answer.status_code == 400 and "error" in answer.json()


async def test_a_wrong_client_is_invalid_client(emulator: RunningEmulator) -> None:
    token = await emulator.admin.issue_refresh_token(emulator.realm_id)
    wrong = await refresh(emulator, token, auth=(emulator.client_id, "not-the-secret"))
    assert (wrong.status_code, wrong.json()) == (401, {"error": "invalid_client"})
    async with httpx.AsyncClient() as http:
        anonymous = await http.post(
            emulator.token_url, data={"grant_type": "refresh_token", "refresh_token": token}
        )
    assert (anonymous.status_code, anonymous.json()) == (401, {"error": "invalid_client"})
    # A refused client does not use up the refresh token.
    assert (await refresh(emulator, token)).status_code == 200


async def test_unsupported_grant_type(emulator: RunningEmulator) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            emulator.token_url,
            data={"grant_type": "password"},
            auth=(emulator.client_id, emulator.client_secret),
        )
    assert (response.status_code, response.json()) == (400, {"error": "unsupported_grant_type"})


async def test_api_requests_need_a_valid_bearer_token(emulator: RunningEmulator) -> None:
    url = f"{emulator.company_url()}/customer/1"
    async with httpx.AsyncClient() as http:
        for headers in ({}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Basic x"}):
            response = await http.get(url, headers=headers)
            assert response.status_code == 401
            body = response.json()
            error = body["fault"]["error"][0]
            assert body["fault"]["type"] == "SERVICE"
            assert error["code"] == "3200"
            assert error["message"] == (
                "message=AuthenticationFailed; errorCode=003200; statusCode=401"
            )
    log = await emulator.admin.requests(emulator.realm_id)
    assert [entry["status"] for entry in log] == [401, 401, 401]
    assert (await emulator.admin.limits(emulator.realm_id))["used_in_window"] == 0


async def test_expired_access_tokens_are_refused_until_refreshed(emulator: RunningEmulator) -> None:
    async with qbo_client(emulator) as qbo:
        assert (await qbo.get("customer/1")).status_code == 200
        assert await emulator.admin.expire_access_tokens(emulator.realm_id) == 1
        expired = await qbo.get("customer/1")
        assert expired.status_code == 401
        assert expired.json()["fault"]["error"][0]["detail"].startswith("Token expired")
        await qbo.authorize(await emulator.admin.issue_refresh_token(emulator.realm_id))
        assert (await qbo.get("customer/1")).status_code == 200


async def test_access_token_lifetime_is_configurable() -> None:
    async with running_emulator(EmulatorConfig(access_token_seconds=0.3)) as emulator:
        grant = (await refresh(emulator, emulator.refresh_token)).json()
        assert grant["expires_in"] == 0
        headers = {"Authorization": f"Bearer {grant['access_token']}"}
        async with httpx.AsyncClient() as http:

            async def refused() -> bool:
                response = await http.get(f"{emulator.company_url()}/customer/1", headers=headers)
                return response.status_code == 401

            await eventually(refused, timeout=5, what="the access token to expire")


async def test_a_token_opens_only_its_own_realm(emulator: RunningEmulator) -> None:
    other = await emulator.admin.create_realm()
    async with qbo_client(emulator, other["realm_id"], other["refresh_token"]) as qbo:
        assert (await qbo.get("customer/1")).status_code == 200
        qbo.realm_id = emulator.realm_id
        response = await qbo.get("customer/1")
        assert response.status_code == 403
        assert response.json()["Fault"]["Error"][0]["code"] == "3100"


async def test_revoking_a_refresh_token(emulator: RunningEmulator) -> None:
    token = await emulator.admin.issue_refresh_token(emulator.realm_id)
    async with httpx.AsyncClient() as http:
        response = await http.post(
            emulator.base_url + "/oauth2/v1/tokens/revoke",
            json={"token": token},
            auth=(emulator.client_id, emulator.client_secret),
        )
    assert response.status_code == 200
    assert (await refresh(emulator, token)).json() == {"error": "invalid_grant"}


async def test_discovery_document_names_the_token_endpoint(emulator: RunningEmulator) -> None:
    async with httpx.AsyncClient() as http:
        document = (await http.get(emulator.discovery_url)).json()
    assert document["token_endpoint"] == emulator.token_url
    assert document["revocation_endpoint"].startswith(emulator.base_url)
