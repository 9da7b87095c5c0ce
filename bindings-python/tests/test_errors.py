"""The exception hierarchy."""

import pytest

import docker_machine as dm

CODES = {
    "StoreError": "Store",
    "NotFoundError": "NotFound",
    "AlreadyExistsError": "AlreadyExists",
    "InvalidNameError": "InvalidName",
    "DriverError": "Driver",
    "NotSupportedError": "NotSupported",
    "UnknownDriverError": "UnknownDriver",
    "PreCreateCheckError": "PreCreateCheck",
    "InvalidOptionError": "InvalidOption",
    "CertError": "Cert",
    "CertCheckError": "CertCheck",
    "SshError": "Ssh",
    "HostKeyMismatchError": "HostKeyMismatch",
    "ProvisionError": "Provision",
    "EngineError": "Engine",
    "NotRunningError": "NotRunning",
    "MachineTimeoutError": "Timeout",
    "IoError": "Io",
}


@pytest.mark.parametrize("name, code", sorted(CODES.items()))
def test_every_code_has_a_class(name, code):
    cls = getattr(dm, name)
    assert issubclass(cls, dm.MachineError)
    assert cls.code == code
    assert cls.__module__ == "docker_machine"
    assert cls.__doc__
    assert name in dm.__all__


def test_hierarchy():
    assert issubclass(dm.MachineError, Exception)
    assert issubclass(dm.HostKeyMismatchError, dm.SshError)
    assert issubclass(dm.CertCheckError, dm.CertError)
    for c in (dm.NotFoundError, dm.AlreadyExistsError, dm.InvalidNameError):
        assert issubclass(c, dm.StoreError)
    for c in (dm.NotSupportedError, dm.UnknownDriverError, dm.PreCreateCheckError):
        assert issubclass(c, dm.DriverError)
    # builtin bases, so that code catching builtin exceptions catches ours too
    assert issubclass(dm.InvalidOptionError, ValueError)
    assert issubclass(dm.InvalidNameError, ValueError)
    assert issubclass(dm.NotFoundError, LookupError)
    assert issubclass(dm.NotSupportedError, NotImplementedError)
    assert issubclass(dm.MachineTimeoutError, TimeoutError)
    assert issubclass(dm.IoError, OSError)
    # and the builtins are not shadowed
    assert dm.MachineTimeoutError is not TimeoutError
    assert not hasattr(dm, "TimeoutError")


def test_classes_can_be_raised_by_users():
    with pytest.raises(dm.MachineError) as ei:
        raise dm.NotFoundError("no such thing")
    assert ei.value.code == "NotFound"
    assert ei.value.machine is None


def test_every_core_error_code_has_its_own_exception_class():
    from docker_machine import _native

    pairs = _native.error_classes()
    assert len(pairs) >= 18
    for code, class_name in pairs:
        assert class_name != "MachineError", f"core code {code} has no exception class"
        cls = getattr(dm, class_name)
        assert issubclass(cls, dm.MachineError)
        assert cls.code == code
