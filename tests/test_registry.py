import pytest

from qprobe.errors import UnknownNameError
from qprobe.registry import Registry


def test_register_create_list_and_metadata():
    reg: Registry = Registry("widget")

    @reg.register("gaussian_blur", family="blur", needs_torch=False)
    class GaussianBlur:
        def __init__(self, sigma: float = 1.0) -> None:
            self.sigma = sigma

    @reg.register("motion_blur", family="blur")
    def motion(length: int = 3) -> tuple[str, int]:
        return ("motion", length)

    reg.add("noise", dict, family="noise")
    assert reg.list() == ["gaussian_blur", "motion_blur", "noise"]
    assert reg.list("*blur*") == ["gaussian_blur", "motion_blur"]
    assert reg.list(family="noise") == ["noise"]
    assert reg.create("gaussian_blur", sigma=2.5).sigma == 2.5
    assert reg.create("motion_blur", length=7) == ("motion", 7)
    assert reg.metadata("gaussian_blur") == {"family": "blur", "needs_torch": False}
    assert "noise" in reg and "nope" not in reg and len(reg) == 3


def test_unknown_name_suggests():
    reg: Registry = Registry("degradation")
    reg.add("gaussian_blur", object)
    with pytest.raises(UnknownNameError, match="did you mean 'gaussian_blur'"):
        reg.get("gausian_blur")
    with pytest.raises(KeyError):
        reg.get("zzz")


def test_duplicate_registration_fails():
    reg: Registry = Registry("x")
    reg.add("a", int)
    reg.add("a", int)  # same object again is fine (module re-import)
    with pytest.raises(ValueError, match="already registered"):
        reg.add("a", float)
