"""A user's own gradient method in the gradient check: its dtype, and how a given reference is judged."""
import numpy as np

from diffsuite.testing import check_gradients


class Given:
    """A user's gradient: the check's method protocol (``grad``), with no ``dtype`` attribute."""

    def __init__(self, gradient, name="mygrad"):
        self.gradient, self.name = gradient, name

    def value_and_grad(self, objective):
        raise NotImplementedError

    def grad(self, f):
        return lambda theta, *args: self.gradient(theta, *args)


def test_a_users_method_without_a_dtype_computes_in_the_checks():
    """With dtype="float32", a user's object naming no dtype is a float32 method (float32's tolerance); it was
    held to float64's 1e-9 and a correct float32 gradient failed (review). Oracle: 2t by hand, rounded to float32."""
    t = np.array([0.1, 1.7, -2.3])
    g32 = (2 * t.astype(np.float32)).astype(np.float64) * (1 + 3e-7)  # float32's rounding of a float32 computation
    report = check_gradients(lambda xp, t: xp.sum(t * t), t, methods=[Given(lambda t: g32)], dtype="float32")
    assert report.passed, report.failure_message()
    assert "float32" in report.summary()[0]["rtol_why"]
    assert not check_gradients(lambda xp, t: xp.sum(t * t), t, methods=[Given(lambda t: g32)]).passed  # float64


def test_a_given_reference_slightly_wrong_is_named_even_when_a_looser_method_agrees():
    """reference= a gradient 1e-6 off at one entry: central (rtol 1e-6) agrees with it, reverse fails; the report
    must say the reference disagrees with the exact gradient (before: it blamed reverse mode). Oracle: 2t by hand."""
    t = np.array([0.1, 1.7, -2.3])
    given = 2 * t
    given[1] *= 1 + 1e-6
    report = check_gradients(lambda xp, t: xp.sum(t * t), t, reference=given, methods=("reverse", "central"))
    assert "reverse" in report.failed_methods
    message = report.failure_message()
    assert "disagrees with the exact gradient (certified)" in message and "the reference is likely wrong" in message
    # a right reference gets no such hint
    right = check_gradients(lambda xp, t: xp.sum(t * t), t, reference=2 * t, methods=("reverse", "central"))
    assert right.passed and right.reference_vs_exact is None


def test_a_hessian_report_claims_no_kink_detection_it_has_not():
    """check_hessian's finite differences look for no kinks: '-' in the kinks column, not 0, and no 'step
    straddles kink: no' line (review: a float32 failure next to a relu kink read as 'no kink')."""
    from diffsuite.testing import check_hessian
    A = np.array([[1.0, 0.5], [-0.3, 2.0], [0.7, -1.1]])
    f = lambda xp, t, A: xp.sum(xp.relu(A @ t)) + xp.sum(t * t)  # noqa: E731 - Hessian 2 I away from kinks
    wrong = 2.0 * np.eye(2)
    wrong[0, 0] = 3.0  # a wrong reference, so that every method fails and the worst entries are listed
    report = check_hessian(f, np.array([0.3, -0.2]), A, reference=wrong)
    assert "central" in report.failed_methods
    central = next(line for line in str(report).splitlines() if line.startswith("central"))
    assert central.rstrip().endswith("-")
    message = report.failure_message()
    assert "worst entries" in message and "straddles kink" not in message
