"""The OCI config: decode config.json into frozen model classes, then validate it.

``load_spec``/``decode_spec`` turn JSON into a ``Spec`` (``spec.model``) and
report every type problem with its JSON path; ``validate_spec``/``check_spec``
apply the cross-field rules. This package imports only the standard library,
and for a valid config not even :mod:`typing`, :mod:`json` or :mod:`re` (see
``spec.jsontext``): every ``create``, ``run`` and ``exec`` decodes one.
"""

from pyruntime.spec.decode import decode_spec, load_spec
from pyruntime.spec.model import Spec
from pyruntime.spec.validate import check_spec, validate_spec

__all__ = ["Spec", "check_spec", "decode_spec", "load_spec", "validate_spec"]
