"""Signing against every official test vector (Python SDK tests/signing_test.py @7ee976d and
Rust SDK exchange_client.rs @aac7558, as listed in reference/hyperliquid-verified.md 1.5)."""

from __future__ import annotations

import pickle
import threading

import pytest

from market_maker.errors import ConfigError
from market_maker.venues.hyperliquid.signing import (
    NonceSource,
    Signer,
    action_hash,
    recover_signer,
)

PY_KEY = "0x0123456789012345678901234567890123456789012345678901234567890123"
RS_KEY = "e908f86dbb4d55ac876378565aafeabc187f6690f046459397b17d9b9a19688e"
VAULT = "0x1719884eb866cb12b2287399b15f7db5e7d775ea"

DUMMY = {"type": "dummy", "num": 100000000000}  # float_to_int_for_hashing(1000)
ORDER = {
    "type": "order",
    "orders": [
        {"a": 1, "b": True, "p": "100", "s": "100", "r": False, "t": {"limit": {"tif": "Gtc"}}}
    ],
    "grouping": "na",
}
ORDER_CLOID = {
    "type": "order",
    "orders": [
        {
            "a": 1,
            "b": True,
            "p": "100",
            "s": "100",
            "r": False,
            "t": {"limit": {"tif": "Gtc"}},
            "c": "0x00000000000000000000000000000001",
        }
    ],
    "grouping": "na",
}
TPSL = {
    "type": "order",
    "orders": [
        {
            "a": 1,
            "b": True,
            "p": "100",
            "s": "100",
            "r": False,
            "t": {"trigger": {"isMarket": True, "triggerPx": "103", "tpsl": "sl"}},
        }
    ],
    "grouping": "na",
}

# (name, action, vault, mainnet (r, s, v), testnet (r, s, v)); nonce 0 for all.
PY_VECTORS = [
    (
        "dummy",
        DUMMY,
        None,
        (
            "0x53749d5b30552aeb2fca34b530185976545bb22d0b3ce6f62e31be961a59298",
            "0x755c40ba9bf05223521753995abb2f73ab3229be8ec921f350cb447e384d8ed8",
            27,
        ),
        (
            "0x542af61ef1f429707e3c76c5293c80d01f74ef853e34b76efffcb57e574f9510",
            "0x17b8b32f086e8cdede991f1e2c529f5dd5297cbe8128500e00cbaf766204a613",
            28,
        ),
    ),
    (
        "order",
        ORDER,
        None,
        (
            "0xd65369825a9df5d80099e513cce430311d7d26ddf477f5b3a33d2806b100d78e",
            "0x2b54116ff64054968aa237c20ca9ff68000f977c93289157748a3162b6ea940e",
            28,
        ),
        (
            "0x82b2ba28e76b3d761093aaded1b1cdad4960b3af30212b343fb2e6cdfa4e3d54",
            "0x6b53878fc99d26047f4d7e8c90eb98955a109f44209163f52d8dc4278cbbd9f5",
            27,
        ),
    ),
    (
        "order with cloid",
        ORDER_CLOID,
        None,
        (
            "0x41ae18e8239a56cacbc5dad94d45d0b747e5da11ad564077fcac71277a946e3",
            "0x3c61f667e747404fe7eea8f90ab0e76cc12ce60270438b2058324681a00116da",
            27,
        ),
        (
            "0xeba0664bed2676fc4e5a743bf89e5c7501aa6d870bdb9446e122c9466c5cd16d",
            "0x7f3e74825c9114bc59086f1eebea2928c190fdfbfde144827cb02b85bbe90988",
            28,
        ),
    ),
    (
        "dummy with vault",
        DUMMY,
        VAULT,
        (
            "0x3c548db75e479f8012acf3000ca3a6b05606bc2ec0c29c50c515066a326239",
            "0x4d402be7396ce74fbba3795769cda45aec00dc3125a984f2a9f23177b190da2c",
            28,
        ),
        (
            "0xe281d2fb5c6e25ca01601f878e4d69c965bb598b88fac58e475dd1f5e56c362b",
            "0x7ddad27e9a238d045c035bc606349d075d5c5cd00a6cd1da23ab5c39d4ef0f60",
            27,
        ),
    ),
    (
        "tpsl order",
        TPSL,
        None,
        (
            "0x98343f2b5ae8e26bb2587daad3863bc70d8792b09af1841b6fdd530a2065a3f9",
            "0x6b5bb6bb0633b710aa22b721dd9dee6d083646a5f8e581a20b545be6c1feb405",
            27,
        ),
        (
            "0x971c554d917c44e0e1b6cc45d8f9404f32172a9d3b3566262347d0302896a2e4",
            "0x206257b104788f80450f8e786c329daa589aa0b32ba96948201ae556d5637eac",
            28,
        ),
    ),
    (
        "create sub-account",
        {"type": "createSubAccount", "name": "example"},
        None,
        (
            "0x51096fe3239421d16b671e192f574ae24ae14329099b6db28e479b86cdd6caa7",
            "0xb71f7d293af92d3772572afb8b102d167a7cef7473388286bc01f52a5c5b423",
            27,
        ),
        (
            "0xa699e3ed5c2b89628c746d3298b5dc1cca604694c2c855da8bb8250ec8014a5b",
            "0x53f1b8153a301c72ecc655b1c315d64e1dcea3ee58921fd7507e35818fcc1584",
            28,
        ),
    ),
    (
        "sub-account transfer",
        {
            "type": "subAccountTransfer",
            "subAccountUser": "0x1d9470d4b963f552e6f671a81619d395877bf409",
            "isDeposit": True,
            "usd": 10,
        },
        None,
        (
            "0x43592d7c6c7d816ece2e206f174be61249d651944932b13343f4d13f306ae602",
            "0x71a926cb5c9a7c01c3359ec4c4c34c16ff8107d610994d4de0e6430e5cc0f4c9",
            28,
        ),
        (
            "0xe26574013395ad55ee2f4e0575310f003c5bb3351b5425482e2969fa51543927",
            "0xefb08999196366871f919fd0e138b3a7f30ee33e678df7cfaf203e25f0a4278",
            28,
        ),
    ),
    (
        "schedule cancel",
        {"type": "scheduleCancel"},
        None,
        (
            "0x6cdfb286702f5917e76cd9b3b8bf678fcc49aec194c02a73e6d4f16891195df9",
            "0x6557ac307fa05d25b8d61f21fb8a938e703b3d9bf575f6717ba21ec61261b2a0",
            27,
        ),
        (
            "0xc75bb195c3f6a4e06b7d395acc20bbb224f6d23ccff7c6a26d327304e6efaeed",
            "0x342f8ede109a29f2c0723bd5efb9e9100e3bbb493f8fb5164ee3d385908233df",
            28,
        ),
    ),
    (
        "schedule cancel with time",
        {"type": "scheduleCancel", "time": 123456789},
        None,
        (
            "0x609cb20c737945d070716dcc696ba030e9976fcf5edad87afa7d877493109d55",
            "0x16c685d63b5c7a04512d73f183b3d7a00da5406ff1f8aad33f8ae2163bab758b",
            28,
        ),
        (
            "0x4e4f2dbd4107c69783e251b7e1057d9f2b9d11cee213441ccfa2be63516dc5bc",
            "0x706c656b23428c8ba356d68db207e11139ede1670481a9e01ae2dfcdb0e1a678",
            27,
        ),
    ),
]

RS_ORDER = {
    "type": "order",
    "orders": [
        {"a": 1, "b": True, "p": "2000.0", "s": "3.5", "r": False, "t": {"limit": {"tif": "Ioc"}}}
    ],
    "grouping": "na",
}
RS_ORDER_CLOID = {
    "type": "order",
    "orders": [
        {
            "a": 1,
            "b": True,
            "p": "2000.0",
            "s": "3.5",
            "r": False,
            "t": {"limit": {"tif": "Ioc"}},
            "c": "0x1e60610f0b3d420597c88c1fed2ad5ee",
        }
    ],
    "grouping": "na",
}
RS_TP = {
    "type": "order",
    "orders": [
        {
            "a": 1,
            "b": True,
            "p": "2000.0",
            "s": "3.5",
            "r": False,
            "t": {"trigger": {"isMarket": True, "triggerPx": "2000.0", "tpsl": "tp"}},
        }
    ],
    "grouping": "na",
}
RS_CANCEL = {"type": "cancel", "cancels": [{"a": 1, "o": 82382}]}
RS_VECTORS = [
    (
        "order",
        RS_ORDER,
        "0x77957e58e70f43b6b68581f2dc42011fc384538a2e5b7bf42d5b936f19fbb67360721a8598727230f67080efee48c812a6a4442013fd3b0eed509171bef9f23f1c",
        "0xcd0925372ff1ed499e54883e9a6205ecfadec748f80ec463fe2f84f1209648776377961965cb7b12414186b1ea291e95fd512722427efcbcfb3b0b2bcd4d79d01c",
    ),
    (
        "order with cloid",
        RS_ORDER_CLOID,
        "0xd3e894092eb27098077145714630a77bbe3836120ee29df7d935d8510b03a08f456de5ec1be82aa65fc6ecda9ef928b0445e212517a98858cfaa251c4cd7552b1c",
        "0x3768349dbb22a7fd770fc9fc50c7b5124a7da342ea579b309f58002ceae49b4357badc7909770919c45d850aabb08474ff2b7b3204ae5b66d9f7375582981f111c",
    ),
    (
        "take profit",
        RS_TP,
        "0xb91e5011dff15e4b4a40753730bda44972132e7b75641f3cac58b66159534a170d422ee1ac3c7a7a2e11e298108a2d6b8da8612caceaeeb3e571de3b2dfda9e41b",
        "0x6df38b609904d0d4439884756b8f366f22b3a081801dbdd23f279094a2299fac6424cb0cdc48c3706aeaa368f81959e91059205403d3afd23a55983f710aee871b",
    ),
    (
        "cancel",
        RS_CANCEL,
        "0x02f76cc5b16e0810152fa0e14e7b219f49c361e3325f771544c6f54e157bf9fa17ed0afc11a98596be85d5cd9f86600aad515337318f7ab346e5ccc1b03425d51b",
        "0x6ffebadfd48067663390962539fbde76cfa36f53be65abe2ab72c9db6d0db44457720db9d7c4860f142a484f070c84eb4b9694c3a617c83f0d698a27e55fd5e01c",
    ),
]


def test_phantom_agent_hash_matches_production():
    action = {
        "type": "order",
        "orders": [
            {
                "a": 4,
                "b": True,
                "p": "1670.1",
                "s": "0.0147",
                "r": False,
                "t": {"limit": {"tif": "Ioc"}},
            }
        ],
        "grouping": "na",
    }
    assert action_hash(action, None, 1677777606040, None).hex() == (
        "0fcbeda5ae3c4950a548021552a4fea2226858c4453571bf3f24ba017eac2908"
    )


@pytest.mark.parametrize(
    "name,action,vault,mainnet,testnet", PY_VECTORS, ids=[v[0] for v in PY_VECTORS]
)
def test_python_sdk_vectors(name, action, vault, mainnet, testnet):
    for is_mainnet, (r, s, v) in ((True, mainnet), (False, testnet)):
        sig = Signer(PY_KEY, mainnet=is_mainnet).sign(action, 0, vault_address=vault)
        assert sig == {"r": r, "s": s, "v": v}


@pytest.mark.parametrize("name,action,mainnet,testnet", RS_VECTORS, ids=[v[0] for v in RS_VECTORS])
def test_rust_sdk_vectors(name, action, mainnet, testnet):
    for is_mainnet, expected in ((True, mainnet), (False, testnet)):
        sig = Signer(RS_KEY, mainnet=is_mainnet).sign(action, 1583838)
        packed = (
            int(sig["r"], 16).to_bytes(32, "big")
            + int(sig["s"], 16).to_bytes(32, "big")
            + bytes([sig["v"]])
        )
        assert "0x" + packed.hex() == expected


def test_the_signer_is_recovered_and_a_tampered_action_is_not():
    signer = Signer(PY_KEY, mainnet=True)
    sig = signer.sign(ORDER_CLOID, 1_700_000_000_000, expires_after=1_700_000_060_000)
    assert (
        recover_signer(
            ORDER_CLOID, sig, nonce=1_700_000_000_000, mainnet=True, expires_after=1_700_000_060_000
        )
        == signer.address
    )
    assert (
        recover_signer(
            ORDER_CLOID, sig, nonce=1_700_000_000_001, mainnet=True, expires_after=1_700_000_060_000
        )
        != signer.address
    )
    assert (
        recover_signer(
            ORDER_CLOID,
            sig,
            nonce=1_700_000_000_000,
            mainnet=False,
            expires_after=1_700_000_060_000,
        )
        != signer.address
    )
    tampered = {**ORDER_CLOID, "grouping": "normalTpsl"}
    assert (
        recover_signer(
            tampered, sig, nonce=1_700_000_000_000, mainnet=True, expires_after=1_700_000_060_000
        )
        != signer.address
    )


def test_the_key_never_shows():
    key_hex = PY_KEY[2:]
    signer = Signer(PY_KEY, mainnet=True)
    for text in (repr(signer), str(signer), f"{signer}", repr([signer])):
        assert key_hex not in text and "0123456789012345" not in text
    assert signer.address.startswith("0x") and len(signer.address) == 42
    with pytest.raises(TypeError):
        pickle.dumps(signer)
    with pytest.raises(AttributeError):
        signer.__dict__  # noqa: B018  (slots: no dict to dump)
    for bad in ("0x12", "zz" * 32, "0x" + "00" * 32):
        with pytest.raises(ConfigError) as err:
            Signer(bad, mainnet=True)
        assert bad.removeprefix("0x") not in str(err.value) or bad == "0x12"


def test_nonces_strictly_increase_within_one_millisecond_and_across_threads():
    nonces = NonceSource(clock_ms=lambda: 1_700_000_000_000)
    got: list[int] = []

    def take() -> None:
        for _ in range(1000):
            got.append(nonces.next())

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 4000 and min(got) == 1_700_000_000_000
    clock = iter([5, 5, 4, 10])
    src = NonceSource(clock_ms=lambda: next(clock))
    assert [src.next() for _ in range(4)] == [5, 6, 7, 10]  # never backwards, even if the clock is
