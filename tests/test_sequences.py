"""Sequence windows, the leave-one-out split and padding, on hand-made examples."""
import numpy as np
import pytest
import torch

from tutorial_lib.data import InteractionData, pairs_to_csr
from tutorial_lib.sequences import (PAD, SequenceBatches, check_sequences, eval_inputs, length_chunks,
                                    loo_synthetic, next_item_windows, to_windows, trim_padding)


def hand_data():
    """3 users, 6 items. Full histories (time order): u0 = 0 1 2 3 4, u1 = 5 2 3, u2 = 1 4 0 2 5 3.

    Leave-one-out: the last item is test, the second last valid, the rest train.
    """
    train = [[0, 1, 2], [5], [1, 4, 0, 2]]
    valid, test = [3, 2, 5], [4, 3, 3]
    shape = (3, 6)
    users = np.repeat(np.arange(3), [len(s) for s in train])
    return InteractionData(
        train=pairs_to_csr(users, np.concatenate(train), shape),
        valid=pairs_to_csr(np.arange(3), np.array(valid), shape),
        test=pairs_to_csr(np.arange(3), np.array(test), shape),
        sequences=[np.array(s) for s in train])


def test_every_prefix_is_a_sample_left_padded_and_shifted():
    sb = SequenceBatches(hand_data(), max_len=3)
    # u0: [0]->1, [0,1]->2; u1: none (one item); u2: [1]->4, [1,4]->0, [1,4,0]->2
    expected_inputs = [[0, 0, 1], [0, 1, 2], [0, 0, 2], [0, 2, 5], [2, 5, 1]]
    assert sb.inputs.tolist() == expected_inputs
    assert sb.targets.tolist() == [1, 2, 4, 0, 2]
    assert sb.users.tolist() == [0, 0, 2, 2, 2]
    assert sb.inputs.dtype == sb.targets.dtype == torch.int64


def test_windows_keep_only_the_last_max_len_items():
    sb = SequenceBatches(hand_data(), max_len=2)
    assert sb.inputs[-1].tolist() == [5, 1]                 # items 4, 0 of [1, 4, 0] (+1)


def test_leave_one_out_inputs_valid_and_test():
    data = hand_data()
    valid = eval_inputs(data, "valid", max_len=4)
    assert valid.tolist() == [[0, 1, 2, 3], [0, 0, 0, 6], [2, 5, 1, 3]]
    test = eval_inputs(data, "test", max_len=4)             # train + the validation item
    assert test.tolist() == [[1, 2, 3, 4], [0, 0, 6, 3], [5, 1, 3, 6]]
    assert eval_inputs(data, "test", users=[2], max_len=4).tolist() == [[5, 1, 3, 6]]


def test_next_item_windows_shift_by_one():
    inputs, targets = next_item_windows(hand_data(), max_len=4)
    # users 0 and 2 (user 1 has a single training item)
    assert inputs.tolist() == [[0, 0, 1, 2], [0, 2, 5, 1]]
    assert targets.tolist() == [[-100, -100, 1, 2], [-100, 4, 0, 2]]


def test_shuffled_batches_cover_every_sample_once():
    sb = SequenceBatches(hand_data(), max_len=3)
    seen = torch.cat([y for _, y in sb.batches(2, torch.Generator().manual_seed(0))])
    assert sorted(seen.tolist()) == sorted(sb.targets.tolist())


def test_trim_and_length_chunks_only_drop_padding():
    w = torch.tensor([[0, 0, 0, 3], [0, 0, 2, 1], [0, 0, 0, 5], [0, 4, 4, 4]])
    assert trim_padding(w[:3]).tolist() == [[0, 3], [2, 1], [0, 5]]
    chunks = length_chunks(w, 2)
    rows = torch.cat([r for r, _ in chunks])
    assert sorted(rows.tolist()) == [0, 1, 2, 3]
    assert [c.shape[1] for _, c in chunks] == [1, 3]        # the two length-1 rows, then the rest
    for r, c in chunks:
        assert torch.equal(w[r][:, -c.shape[1]:], c)
        assert (w[r][:, :-c.shape[1]] == PAD).all()


def test_loo_synthetic_has_one_valid_and_one_test_item_per_user():
    data, _ = loo_synthetic(n_users=50, n_items=80, interactions_per_user=10, seed=1)
    assert (np.diff(data.valid.indptr) == 1).all() and (np.diff(data.test.indptr) == 1).all()
    assert eval_inputs(data, "test").shape == (50, 50)


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="outside"):
        check_sequences([np.array([0, 6])], n_items=6)
    with pytest.raises(ValueError, match="outside"):
        to_windows([np.array([-1])], n_items=6)
    with pytest.raises(ValueError, match="no sequences"):
        check_sequences(None, n_items=6)
    data = hand_data()
    data.sequences[1] = np.zeros(0, dtype=np.int64)
    with pytest.raises(ValueError, match="empty input sequence"):
        eval_inputs(data, "valid")
    short = hand_data()
    short.sequences = [s[:1] for s in short.sequences]
    with pytest.raises(ValueError, match="no training prefixes"):
        SequenceBatches(short)
    with pytest.raises(ValueError, match="max_len"):
        SequenceBatches(hand_data(), max_len=0)
    with pytest.raises(ValueError, match="split"):
        eval_inputs(hand_data(), "train")
    with pytest.raises(ValueError, match="chunk_size must be None or a positive integer, got 0"):
        length_chunks(torch.ones(3, 4, dtype=torch.long), 0)
    with pytest.raises(ValueError, match="is a dict"):
        check_sequences({0: [1, 2]}, n_items=6)
    with pytest.raises(ValueError, match="np.flatnonzero"):     # a mask is not a list of ids
        eval_inputs(hand_data(), "valid", users=np.array([False, True]))


def test_test_input_needs_leave_one_out_data():
    data = hand_data()
    data.valid = pairs_to_csr(np.array([0, 0, 1, 2]), np.array([3, 5, 2, 5]), (3, 6))
    with pytest.raises(ValueError, match="leave-one-out"):
        eval_inputs(data, "test")


def test_hand_built_windows_must_be_left_padded():
    from tutorial_lib.sequences import check_batch
    check_batch(torch.tensor([[0, 0, 5], [0, 9, 3]]), torch.tensor([1, 2]), n_items=20)
    with pytest.raises(ValueError, match="left-padded"):       # the models read the last column
        check_batch(torch.tensor([[5, 7, 0], [9, 3, 12]]), torch.tensor([1, 2]), n_items=20)


def test_batch_order_follows_the_generator_and_shuffle_false_keeps_it():
    sb = SequenceBatches(loo_synthetic(n_users=40, n_items=80, interactions_per_user=8, seed=0)[0], max_len=5)
    order = lambda seed: torch.cat([y for _, y in sb.batches(7, torch.Generator().manual_seed(seed))]).tolist()
    assert order(0) == order(0) and order(0) != order(1)
    assert torch.cat([y for _, y in sb.batches(7, shuffle=False)]).tolist() == sb.targets.tolist()


def test_check_batch_bounds_are_exact():
    from tutorial_lib.sequences import check_batch
    check_batch(torch.tensor([[0, 1, 6]]), torch.tensor([5]), n_items=6)          # item 5 is id 6
    with pytest.raises(ValueError, match="window ids"):
        check_batch(torch.tensor([[0, 1, 7]]), torch.tensor([5]), n_items=6)
    with pytest.raises(ValueError, match="target ids"):
        check_batch(torch.tensor([[0, 1, 6]]), torch.tensor([6]), n_items=6)
    check_batch(torch.tensor([[1, 2, 3]]), torch.tensor([[-100, 0, 5]]), n_items=6, ignore_index=-100)
    with pytest.raises(ValueError, match="target ids"):
        check_batch(torch.tensor([[1, 2, 3]]), torch.tensor([[-100, 0, 5]]), n_items=6)
