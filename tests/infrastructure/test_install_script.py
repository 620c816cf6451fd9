"""The portal serves the install script and the agent bundle without sign-in; the script pins the
bundle's SHA-256 and refuses a download that does not match."""

import hashlib
import io
import zipfile


def test_the_install_script_carries_the_bundles_hash_and_url(client, db):
    script = client.get("/infrastructure/tentacle/install.sh").content.decode()
    bundle = client.get("/infrastructure/tentacle/reef-tentacle.pyz").content
    assert f'BUNDLE_SHA256="{hashlib.sha256(bundle).hexdigest()}"' in script
    assert 'BUNDLE_URL="http://testserver/infrastructure/tentacle/reef-tentacle.pyz"' in script
    assert "@@" not in script


def test_the_bundle_is_a_zipapp_of_the_agent_and_is_the_same_every_time(client, db):
    first = client.get("/infrastructure/tentacle/reef-tentacle.pyz")
    assert first["X-Checksum-Sha256"] == hashlib.sha256(first.content).hexdigest()
    names = zipfile.ZipFile(io.BytesIO(first.content)).namelist()
    assert "__main__.py" in names and all(n == "__main__.py" or n.startswith("tentacle_agent/") for n in names)
    from infrastructure.distribution import agent_bundle

    agent_bundle.cache_clear()
    assert client.get("/infrastructure/tentacle/reef-tentacle.pyz").content == first.content
