"""DB-MTL (``dbmtl``) and its gradient half (``gradmax``), against specs/dbmtl.md."""

import copy

import pytest
import torch
from tinymtl import TinyMTL, make_batch

import molmtl.balancing as mb

# (n_tasks, beta, beta_sigma, seed)
SETTINGS = [(1, 0.9, 0.0, 0), (2, 0.9, 0.0, 1), (3, 0.5, 0.5, 2), (5, 0.9, 0.2, 3)]


def reference_gradmax(grads_per_step, masks_per_step, beta, beta_sigma):
    """The spec, one task and one step at a time, with Python lists."""
    n_tasks, n_params = grads_per_step[0].shape
    buffers = [torch.zeros(n_params, dtype=torch.float64) for _ in range(n_tasks)]
    step = 0
    updates = []
    for grads, mask in zip(grads_per_step, masks_per_step, strict=True):
        labelled = [t for t in range(n_tasks) if mask[t]]
        if labelled:
            step += 1
        beta_k = beta / max(step, 1) ** beta_sigma
        for t in labelled:
            buffers[t] = beta_k * buffers[t] + (1 - beta_k) * grads[t].double()
        update = torch.zeros(n_params, dtype=torch.float64)
        if labelled:
            largest = max(buffers[t].norm() for t in labelled)
            for t in labelled:
                update += largest / (buffers[t].norm() + 1e-8) * buffers[t]
        updates.append(update)
    return updates


def random_steps(n_tasks, seed, n_steps=6, with_masks=False):
    generator = torch.Generator().manual_seed(seed)
    scales = 10.0 ** torch.randint(-3, 3, (n_tasks, 1), generator=generator)
    grads = [torch.randn(n_tasks, 7, generator=generator) * scales for _ in range(n_steps)]
    if with_masks:
        masks = [torch.rand(n_tasks, generator=generator) < 0.6 for _ in range(n_steps)]
        masks[2] = torch.zeros(n_tasks, dtype=torch.bool)  # a batch without any label
    else:
        masks = [torch.ones(n_tasks, dtype=torch.bool)] * n_steps
    return grads, masks


@pytest.mark.parametrize("with_masks", [False, True])
@pytest.mark.parametrize(("n_tasks", "beta", "beta_sigma", "seed"), SETTINGS)
def test_aggregation_matches_reference(n_tasks, beta, beta_sigma, seed, with_masks):
    grads, masks = random_steps(n_tasks, seed, with_masks=with_masks)
    expected = reference_gradmax(grads, masks, beta, beta_sigma)
    aggregator = mb.GradMax(beta=beta, beta_sigma=beta_sigma)
    for step_grads, mask, update in zip(grads, masks, expected, strict=True):
        masked = torch.where(mask[:, None], step_grads, 0.0).double()
        torch.testing.assert_close(aggregator(masked, mask=mask), update, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("n_tasks", "beta", "beta_sigma", "seed"), SETTINGS)
def test_masked_task_keeps_its_buffer_and_is_left_out(n_tasks, beta, beta_sigma, seed):
    grads, _ = random_steps(n_tasks, seed, n_steps=2)
    aggregator = mb.GradMax(beta=beta, beta_sigma=beta_sigma)
    aggregator(grads[0])
    before = aggregator.state_dict()
    mask = torch.ones(n_tasks, dtype=torch.bool)
    mask[0] = False
    update, weights = aggregator.aggregate(
        torch.where(mask[:, None], grads[1], 0.0), grads[1].new_ones(n_tasks), mask
    )
    after = aggregator.state_dict()
    torch.testing.assert_close(after["grad_buffer_"][0], before["grad_buffer_"][0], rtol=0, atol=0)
    assert weights[0] == 0
    # Left out of the max and the sum: the update is that of the labelled tasks alone.
    buffers = after["grad_buffer_"][1:]
    norms = buffers.norm(dim=1)
    expected = (
        ((norms.max() / (norms + 1e-8))[:, None] * buffers).sum(0)
        if n_tasks > 1
        else torch.zeros(7)
    )
    torch.testing.assert_close(update, expected)


def test_batch_without_labels_changes_nothing():
    model = TinyMTL()
    x, y = make_batch()
    balancer = mb.get("dbmtl", **model.balancer_kwargs())
    balancer.backward(model.losses(x, y))
    before = copy.deepcopy(balancer.state_dict())
    model.zero_grad(set_to_none=True)
    diagnostics = balancer.backward(model.losses(x, y), torch.zeros(3, dtype=torch.bool))
    after = balancer.state_dict()
    torch.testing.assert_close(after, before, rtol=0, atol=0)
    assert (diagnostics["weights"] == 0).all()
    assert all((p.grad == 0).all() for p in model.parameters())


def libmtl_dbmtl_grads(model, x, y, buffer, step, beta=0.9, beta_sigma=0.0):
    """A transcription of LibMTL's DB_MTL.backward: per-task .backward() of the log losses."""
    shared = list(model.trunk.parameters())
    model.zero_grad(set_to_none=True)
    log_losses = torch.log(model.losses(x, y) + 1e-8)
    rows = []
    for task in range(len(log_losses)):
        log_losses[task].backward(retain_graph=True)
        rows.append(torch.cat([p.grad.reshape(-1).clone() for p in shared]))
        for p in shared:
            p.grad.zero_()
    batch_grads = torch.stack(rows)
    buffer = batch_grads + (beta / step**beta_sigma) * (buffer - batch_grads)
    norms = buffer.norm(dim=-1)
    alpha = norms.max() / (norms + 1e-8)
    new_grads = sum(alpha[t] * buffer[t] for t in range(len(log_losses)))
    offset = 0
    for p in shared:
        p.grad.copy_(new_grads[offset : offset + p.numel()].view_as(p))
        offset += p.numel()
    return buffer


@pytest.mark.parametrize("backend", list(mb.BACKENDS))
@pytest.mark.parametrize(("n_tasks", "beta", "beta_sigma", "seed"), SETTINGS)
def test_training_matches_libmtl_transcription(n_tasks, beta, beta_sigma, seed, backend):
    reference = TinyMTL(n_tasks=n_tasks, seed=seed)
    model = copy.deepcopy(reference)
    balancer = mb.get(
        "dbmtl", beta=beta, beta_sigma=beta_sigma, backend=backend, **model.balancer_kwargs()
    )
    reference_optimizer = torch.optim.SGD(reference.parameters(), lr=0.05)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    buffer = torch.zeros(n_tasks, sum(p.numel() for p in reference.trunk.parameters()))
    for step in range(1, 5):
        x, y = make_batch(n_tasks, seed=seed + step)
        buffer = libmtl_dbmtl_grads(reference, x, y, buffer, step, beta, beta_sigma)
        optimizer.zero_grad()
        balancer.backward(model.losses(x, y))
        torch.testing.assert_close(model.shared_grad(), reference.shared_grad())
        torch.testing.assert_close(model.task_grad(), reference.task_grad())
        reference_optimizer.step()
        optimizer.step()


def shared_updates(model, balancer, batches, loss_scales=None):
    updates = []
    for x, y in batches:
        model.zero_grad(set_to_none=True)
        losses = model.losses(x, y)
        if loss_scales is not None:
            losses = losses * loss_scales
        diagnostics = balancer.backward(losses)
        updates.append((model.shared_grad().clone(), diagnostics["weights"]))
    return updates


@pytest.mark.parametrize("name", ["dbmtl", "si"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_invariant_to_per_task_loss_scale(name, seed):
    # float64 and ε = 0: the log then removes the scale exactly (ε = 1e-8 bends it slightly).
    model = TinyMTL(seed=seed).double()
    batches = [tuple(t.double() for t in make_batch(seed=seed + i)) for i in range(3)]
    scales = torch.tensor([1e-3, 7.0, 1e4], dtype=torch.float64)
    plain = shared_updates(model, mb.get(name, eps=0.0, **model.balancer_kwargs()), batches)
    scaled = shared_updates(
        model, mb.get(name, eps=0.0, **model.balancer_kwargs()), batches, scales
    )
    for (update, _), (scaled_update, _) in zip(plain, scaled, strict=True):
        torch.testing.assert_close(scaled_update, update, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["dbmtl", "gradmax"])
@pytest.mark.parametrize("permutation", [[2, 0, 1], [1, 0, 2], [2, 1, 0]])
def test_invariant_to_task_order(name, permutation):
    model = TinyMTL().double()
    permuted = copy.deepcopy(model)
    permuted.heads = torch.nn.ModuleList(permuted.heads[i] for i in permutation)
    batches = [tuple(t.double() for t in make_batch(seed=i)) for i in range(3)]
    permuted_batches = [(x, y[:, permutation]) for x, y in batches]
    plain = shared_updates(model, mb.get(name, **model.balancer_kwargs()), batches)
    reordered = shared_updates(
        permuted, mb.get(name, **permuted.balancer_kwargs()), permuted_batches
    )
    for (update, weights), (permuted_update, permuted_weights) in zip(
        plain, reordered, strict=True
    ):
        torch.testing.assert_close(permuted_update, update, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(permuted_weights, weights[permutation])


@pytest.mark.parametrize(("beta", "beta_sigma"), [(0.9, 0.0), (0.5, 1.0)])
def test_single_task_is_the_smoothed_log_loss_gradient(beta, beta_sigma):
    model = TinyMTL(n_tasks=1)
    balancer = mb.get("dbmtl", beta=beta, beta_sigma=beta_sigma, **model.balancer_kwargs())
    smoothed = torch.zeros(sum(p.numel() for p in model.trunk.parameters()))
    for step in range(1, 4):
        x, y = make_batch(1, seed=step)
        grads = torch.autograd.grad(
            torch.log(model.losses(x, y)[0] + 1e-8), list(model.trunk.parameters())
        )
        beta_k = beta / step**beta_sigma
        smoothed = beta_k * smoothed + (1 - beta_k) * torch.cat([g.reshape(-1) for g in grads])
        model.zero_grad(set_to_none=True)
        balancer.backward(model.losses(x, y))
        torch.testing.assert_close(model.shared_grad(), smoothed, rtol=1e-6, atol=1e-9)


def test_gradmax_with_log_is_dbmtl():
    model = TinyMTL()
    batches = [make_batch(seed=i) for i in range(3)]
    dbmtl = shared_updates(model, mb.get("dbmtl", **model.balancer_kwargs()), batches)
    gradmax_log = shared_updates(model, mb.get("gradmax+log", **model.balancer_kwargs()), batches)
    for (a, wa), (b, wb) in zip(dbmtl, gradmax_log, strict=True):
        assert torch.equal(a, b) and torch.equal(wa, wb)


def test_heads_get_the_plain_log_loss_gradient():
    model = TinyMTL()
    x, y = make_batch()
    heads = list(model.heads.parameters())
    expected = torch.autograd.grad(torch.log(model.losses(x, y) + 1e-8).sum(), heads)
    mb.get("dbmtl", **model.balancer_kwargs()).backward(model.losses(x, y))
    for param, grad in zip(heads, expected, strict=True):
        torch.testing.assert_close(param.grad, grad)


@pytest.mark.parametrize(
    ("options", "match"), [({"beta": 1.0}, "beta"), ({"beta_sigma": -1.0}, "beta_sigma")]
)
def test_invalid_options(options, match):
    with pytest.raises(ValueError, match=match):
        mb.GradMax(**options)


@pytest.mark.parametrize("options", [{}, {"beta": 0.5, "beta_sigma": 0.5, "eps": 1e-6}])
def test_class_builds_what_get_builds(options):
    by_name, by_class = TinyMTL(), TinyMTL()
    named = mb.get("dbmtl", **options, **by_name.balancer_kwargs())
    built = mb.DBMTL(**options, **by_class.balancer_kwargs())
    assert type(named) is mb.DBMTL and named.log_transform and built.log_transform
    assert (named.eps, named.aggregator.beta, named.aggregator.beta_sigma) == (
        built.eps,
        built.aggregator.beta,
        built.aggregator.beta_sigma,
    )
    batches = [make_batch(seed=i) for i in range(3)]
    for (update, weights), (class_update, class_weights) in zip(
        shared_updates(by_name, named, batches),
        shared_updates(by_class, built, batches),
        strict=True,
    ):
        assert torch.equal(update, class_update) and torch.equal(weights, class_weights)
    torch.testing.assert_close(built.state_dict(), named.state_dict(), rtol=0, atol=0)


@pytest.mark.parametrize("with_masks", [False, True])
def test_weights_are_those_of_the_next_step_and_change_no_state(with_masks):
    grads, masks = random_steps(3, seed=4, with_masks=with_masks)
    aggregator = mb.GradMax(beta_sigma=0.5)
    for step_grads, mask in zip(grads, masks, strict=True):
        masked = torch.where(mask[:, None], step_grads, 0.0)
        losses = masked.new_ones(3)
        before = copy.deepcopy(aggregator.state_dict())
        asked = [aggregator.weights(masked, losses, mask) for _ in range(2)]
        torch.testing.assert_close(aggregator.state_dict(), before, rtol=0, atol=0)
        _, applied = aggregator.aggregate(masked, losses, mask)
        assert torch.equal(asked[0], asked[1]) and torch.equal(asked[0], applied)
