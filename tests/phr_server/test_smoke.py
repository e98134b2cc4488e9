from tests.phr_server.conftest import World


def test_smoke(world: World, family: dict[str, str]) -> None:
    parent = world.user("sub-parent", codes=[("P1", "self"), ("C1", "child")])
    r = world.get("/" + family["urn:uuid:o1"], parent)
    assert r.status_code == 200, r.get_json()
    r = world.get("/Observation?_count=2", parent)
    assert r.status_code == 200, r.get_json()
    print(r.get_json())
