"""Parity with the official code: conditions, DiT velocity, guidance, ODE endpoints and the training loss."""

from __future__ import annotations

import pytest
import torch

from vssflow_core.flow.guidance import GuidedVelocity
from vssflow_core.flow.path import flow_matching_loss, with_conditions
from vssflow_core.flow.solvers import make_solver

from golden import assert_matches_golden, load_small_model, small_conditions


@pytest.fixture(scope="module")
def io(load_golden):
    return load_golden("vssflow_small_io")


@pytest.fixture(scope="module")
def model(golden_dir, golden_manifest):
    return load_small_model(golden_dir, golden_manifest)


@pytest.fixture(scope="module")
def conditions(model, io):
    with torch.no_grad():
        return small_conditions(model, io)


def test_small_checkpoint_loads_strictly_with_the_configuration_its_shapes_imply(model, golden_manifest):
    expected = golden_manifest["vssflow_small_weights"]
    assert model.cfg.in_channels == expected["dit_in_channels"]
    assert model.cfg.num_layers == expected["config"]["num_layers"]
    assert model.cfg.num_kv_heads == expected["config"]["num_key_value_attention_heads"]


def test_conditions_are_padded_projected_and_routed_as_official(conditions, io):
    assert_matches_golden(conditions.context, io["cross_attn_cond"])
    assert_matches_golden(conditions.latent_cond, io["latent_cond"])


def test_sample_without_speech_lips_or_speaker_has_exactly_zero_for_those_conditions(conditions, model):
    # sample 1 of the golden batch carries zeros: the bias-free projections must keep them zero
    lip = conditions.latent_cond[1, : model.cfg.lip_channels]
    assert torch.count_nonzero(lip) == 0
    assert torch.count_nonzero(conditions.context[1, 0]) == 0


def test_rotary_tables_match(model, io):
    cos, sin = model.dit.rope(io["x_t"].shape[-1])
    torch.testing.assert_close(cos, io["rope_cos"], rtol=0, atol=1e-6)
    torch.testing.assert_close(sin, io["rope_sin"], rtol=0, atol=1e-6)


def test_dit_velocity_matches(model, conditions, io):
    with torch.no_grad():
        assert_matches_golden(model(io["x_t"], io["t"], conditions.context), io["v"])


def test_guided_velocity_matches_and_keeps_condition_channels_fixed(model, conditions, io):
    with torch.no_grad():
        v = GuidedVelocity(model, conditions, guidance_scale=3.0)(io["t_cfg"], io["x_t"])
    assert_matches_golden(v, io["v_cfg"])
    assert torch.count_nonzero(v[:, model.latent_channels:]) == 0


@pytest.mark.parametrize("method,steps,key,evaluations", [("euler", 16, "x_euler16", 16),
                                                          ("midpoint", 8, "x_midpoint8", 16)])
def test_fixed_step_endpoints_match(model, conditions, io, method, steps, key, evaluations):
    with torch.no_grad():
        solution = make_solver(method, steps).solve(GuidedVelocity(model, conditions),
                                                    with_conditions(io["noise"], conditions.latent_cond))
    assert solution.evaluations == evaluations
    torch.testing.assert_close(solution.x, io[key], rtol=0, atol=1e-4)


def test_adaptive_dopri5_endpoint_matches_with_the_official_number_of_evaluations(model, conditions, io,
                                                                                   golden_manifest):
    official = golden_manifest["vssflow_small_io"]["official_evaluations"]["x_dopri5"]
    with torch.no_grad():
        solution = make_solver("dopri5", atol=1e-5, rtol=1e-5).solve(
            GuidedVelocity(model, conditions), with_conditions(io["noise"], conditions.latent_cond))
    assert abs(solution.evaluations - official) <= 3
    torch.testing.assert_close(solution.x, io["x_dopri5"], rtol=0, atol=1e-3)
    # the condition channels ride along unchanged (up to the rounding of the dense-output polynomial)
    torch.testing.assert_close(solution.x[:, model.latent_channels:], conditions.latent_cond, rtol=0, atol=1e-6)


def test_training_loss_matches(model, conditions, io):
    with torch.no_grad():
        loss = flow_matching_loss(model, io["loss_x0"], io["loss_x1"], io["loss_t"], conditions)
    torch.testing.assert_close(loss, io["loss"].reshape(()), rtol=1e-5, atol=0)
